#!/usr/bin/env node
'use strict';

/**
 * Drives a headless Chromium with puppeteer-core for the Python tests (tests/browser/peer.py).
 *
 *   node driver.js --chromium /usr/bin/chromium --user-data-dir DIR
 *
 * Line protocol, one JSON object per line. stdin takes commands {"id", "cmd", ...}; stdout
 * gives answers {"id", "result"} or {"id", "error"} and events {"event", ...}:
 *   {"event": "ready", "pid", "version"}             once Chromium runs
 *   {"event": "console"|"pageerror", "page", "text"}  what the pages print or throw
 *   {"event": "disconnected", "reason"}               Chromium went away (the driver exits)
 * Commands: open {url, api?} -> {page}; call {page, fn, arg} -> window.peerApi[fn](arg);
 * evaluate {page, expression}; screenshot {page, path, selector?}; closePage {page}; close.
 *
 * The driver lives exactly as long as its stdin: when the Python side closes it or dies, the
 * driver kills Chromium and exits (puppeteer's own signal handling is off: it can keep node
 * alive after the browser closed).
 */

const puppeteer = require('puppeteer-core');

function parseArgs(argv) {
	const options = { chromium: '/usr/bin/chromium', userDataDir: null, extraArgs: [] };
	for (let i = 2; i < argv.length; i++) {
		const arg = argv[i];
		if (arg === '--chromium') options.chromium = argv[++i];
		else if (arg === '--user-data-dir') options.userDataDir = argv[++i];
		else if (arg === '--chromium-arg') options.extraArgs.push(argv[++i]);
		else throw new Error(`unknown argument ${arg}`);
	}
	if (!options.userDataDir) throw new Error('--user-data-dir is required');
	return options;
}

function emit(message) {
	process.stdout.write(`${JSON.stringify(message)}\n`);
}

// Why each flag: root needs --no-sandbox; the fake camera runs at 20 fps unless told 30;
// without the field trial Chromium sends only 2 of 3 VP8 simulcast layers at 640x480;
// remote audio is not pulled without the autoplay policy; the rest keep a test browser quiet.
const CHROMIUM_ARGS = [
	'--no-sandbox',
	'--headless=new',
	'--disable-gpu',
	'--disable-quic',
	'--no-first-run',
	'--disable-background-networking',
	'--disable-component-update',
	'--disable-sync',
	'--use-fake-ui-for-media-stream',
	'--use-fake-device-for-media-stream=fps=30',
	'--force-fieldtrials=WebRTC-LegacySimulcastLayerLimit/Disabled/',
	'--autoplay-policy=no-user-gesture-required',
];

let browser = null;
let chromiumProcess = null;
let exiting = false;
const pages = new Map();
let nextPageId = 1;

function killChromium() {
	if (chromiumProcess && chromiumProcess.exitCode === null) {
		try {
			// Puppeteer starts Chromium as its own process group: take the helpers with it.
			process.kill(-chromiumProcess.pid, 'SIGKILL');
		} catch (error) {
			try { chromiumProcess.kill('SIGKILL'); } catch (ignored) { /* gone already */ }
		}
	}
}

function exit(code) {
	if (exiting) return;
	exiting = true;
	killChromium();
	// Let stdout drain, but never linger.
	process.stdout.write('', () => process.exit(code));
	setTimeout(() => process.exit(code), 500).unref();
}

function pageOf(id) {
	const page = pages.get(id);
	if (!page) throw new Error(`no page ${id}`);
	return page;
}

async function open({ url, api }) {
	const page = await browser.newPage();
	const id = nextPageId++;
	pages.set(id, page);
	page.on('console', (message) => emit({ event: 'console', page: id, type: message.type(), text: message.text() }));
	page.on('pageerror', (error) => emit({ event: 'pageerror', page: id, text: String(error && error.message ? error.message : error) }));
	page.on('error', (error) => emit({ event: 'pageerror', page: id, text: `page crashed: ${error}` }));
	page.on('close', () => pages.delete(id));
	let response;
	try {
		response = await page.goto(url, { waitUntil: 'load', timeout: 15000 });
	} catch (error) {
		await page.close().catch(() => {});
		throw new Error(`page ${url} failed to load: ${error.message.split('\n')[0]}`);
	}
	if (!response || !response.ok()) {
		const status = response ? `HTTP ${response.status()}` : 'no response';
		await page.close().catch(() => {});
		throw new Error(`page ${url} failed to load: ${status}`);
	}
	if (api) {
		const present = await page.evaluate((name) => typeof window[name] === 'object', api);
		if (!present) {
			await page.close().catch(() => {});
			throw new Error(`page ${url} loaded without window.${api} (is the bundle built?)`);
		}
	}
	return { page: id };
}

async function handle(command) {
	switch (command.cmd) {
		case 'open':
			return open(command);
		case 'call':
			return pageOf(command.page).evaluate(
				(fn, arg) => {
					if (!window.peerApi || typeof window.peerApi[fn] !== 'function') {
						throw new Error(`peerApi has no function ${fn}`);
					}
					return window.peerApi[fn](arg);
				},
				command.fn,
				command.arg === undefined || command.arg === null ? {} : command.arg,
			);
		case 'evaluate':
			return pageOf(command.page).evaluate(command.expression);
		case 'screenshot': {
			const page = pageOf(command.page);
			if (command.selector) {
				const element = await page.$(command.selector);
				if (!element) throw new Error(`no element ${command.selector} on the page`);
				await element.screenshot({ path: command.path });
			} else {
				await page.screenshot({ path: command.path, fullPage: true });
			}
			return { path: command.path };
		}
		case 'closePage': {
			const page = pages.get(command.page);
			if (page) await page.close();
			return {};
		}
		case 'close':
			setImmediate(() => exit(0));
			return {};
		default:
			throw new Error(`unknown command ${command.cmd}`);
	}
}

function onLine(line) {
	if (!line.trim()) return;
	let command;
	try {
		command = JSON.parse(line);
	} catch (error) {
		emit({ event: 'error', text: `bad command line: ${line.slice(0, 200)}` });
		return;
	}
	handle(command)
		.then((result) => emit({ id: command.id, result: result === undefined ? null : result }))
		.catch((error) => {
			const text = String(error && error.message ? error.message : error);
			emit({ id: command.id, error: text.split('\n')[0] });
		});
}

async function main() {
	const options = parseArgs(process.argv);
	// The driver ends with its stdin, whatever happens to the Python side.
	let buffer = '';
	const early = []; // commands that came before Chromium was up
	process.stdin.setEncoding('utf8');
	process.stdin.on('data', (chunk) => {
		buffer += chunk;
		let newline;
		while ((newline = buffer.indexOf('\n')) >= 0) {
			const line = buffer.slice(0, newline);
			buffer = buffer.slice(newline + 1);
			if (browser) onLine(line);
			else early.push(line);
		}
	});
	process.stdin.on('end', () => exit(0));
	process.stdin.on('error', () => exit(0));
	for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => exit(0));

	browser = await puppeteer.launch({
		executablePath: options.chromium,
		headless: true,
		pipe: true,
		userDataDir: options.userDataDir,
		args: [...CHROMIUM_ARGS, ...options.extraArgs],
		// --mute-audio would keep remote audio from being played out (and measured).
		ignoreDefaultArgs: ['--mute-audio'],
		handleSIGINT: false,
		handleSIGTERM: false,
		handleSIGHUP: false,
		// Each page call has its own deadline on the Python side (tests/browser/peer.py: 30 s,
		// 120 s for sendMessages); this one only must not cut a legitimate long call short.
		protocolTimeout: 300000,
	});
	chromiumProcess = browser.process();
	browser.on('disconnected', () => {
		if (!exiting) {
			emit({ event: 'disconnected', reason: 'Chromium went away' });
			exit(1);
		}
	});
	emit({ event: 'ready', pid: chromiumProcess ? chromiumProcess.pid : null, version: await browser.version() });
	early.splice(0).forEach(onLine);
}

main().catch((error) => {
	const text = String(error && error.message ? error.message : error).split('\n')[0];
	emit({ event: 'failed', text: `Chromium did not start: ${text}` });
	exit(1);
});
