// The page to watch a room of the local SFU: /watch?roomId=R joins as a receive-only peer and
// shows every producer's video with its current layer, resolution, frame rate and bitrate,
// plays its audio, and lets the viewer pick a layer.

import { parseScalabilityMode } from 'mediasoup-client';
import { Room, randomId, roomUrlFromPage } from './room.js';

const params = new URLSearchParams(window.location.search);
const roomId = params.get('roomId');
const tiles = document.getElementById('tiles');
const empty = document.getElementById('empty');
const status = document.getElementById('status');
const soundButton = document.getElementById('sound');
const views = new Map(); // consumer id -> view

// For tests and the curious: what the page shows, as data.
window.watchState = { joined: false, error: null, views };

function setStatus(text) {
	status.textContent = text;
}

function element(tag, className, text) {
	const node = document.createElement(tag);
	if (className) node.className = className;
	if (text !== undefined) node.textContent = text;
	return node;
}

function layerCount(consumer) {
	const encoding = (consumer.rtpParameters.encodings || [])[0] || {};
	const { spatialLayers, temporalLayers } = parseScalabilityMode(encoding.scalabilityMode);
	// A simulcast consumer has one spatial layer per producer encoding.
	return { spatial: spatialLayers, temporal: temporalLayers };
}

function playAll() {
	for (const view of views.values()) {
		view.media.play().then(() => { soundButton.style.display = 'none'; }).catch(() => {});
	}
}
soundButton.addEventListener('click', playAll);

function addView(room, consumer) {
	const video = consumer.kind === 'video';
	const tile = element('div', video ? 'tile' : 'tile audio');
	const peer = room.peers.get(consumer.appData.peerId);
	const who = (peer && peer.displayName) || consumer.appData.peerId || '?';
	const codec = ((consumer.rtpParameters.codecs || [])[0] || {}).mimeType || '';
	tile.appendChild(element('div', 'name', `${who} · ${consumer.kind} ${codec}`));
	const media = element(video ? 'video' : 'audio');
	media.autoplay = true;
	media.playsInline = true;
	media.muted = video; // audio plays from its own element
	media.srcObject = new MediaStream([consumer.track]);
	tile.appendChild(media);
	const stats = element('div', 'stats', video ? 'waiting for the first frame' : '');
	tile.appendChild(stats);
	const view = { consumer, tile, media, stats, buttons: [], preferred: null, last: null, meter: null };
	if (video) {
		const layers = layerCount(consumer);
		const row = element('div', 'layers');
		if (layers.spatial > 1 || layers.temporal > 1) row.appendChild(element('span', null, 'layer:'));
		if (layers.spatial > 1 || layers.temporal > 1) {
			for (let s = 0; s < layers.spatial; s++) {
				for (let t = 0; t < layers.temporal; t++) {
					const button = element('button', null, layers.temporal > 1 ? `S${s}T${t}` : `${s}`);
					button.title = `preferred spatial layer ${s}, temporal layer ${t}`;
					button.dataset.spatial = s;
					button.dataset.temporal = t;
					button.addEventListener('click', () => {
						view.preferred = { spatialLayer: s, temporalLayer: t };
						room.setConsumerPreferredLayers(consumer.id, s, t)
							.catch((error) => setStatus(`setConsumerPreferredLayers failed: ${error}`));
						refreshButtons(room, view);
					});
					view.buttons.push(button);
					row.appendChild(button);
				}
			}
		}
		tile.appendChild(row);
	} else {
		const meter = element('div', 'meter');
		view.meter = element('div');
		meter.appendChild(view.meter);
		tile.appendChild(meter);
	}
	empty.style.display = 'none';
	tiles.appendChild(tile);
	views.set(consumer.id, view);
	media.play().catch(() => {
		// A browser without an autoplay exemption needs one click for sound.
		if (!video) soundButton.style.display = 'inline-block';
	});
}

function removeView(consumer) {
	const view = views.get(consumer.id);
	if (!view) return;
	view.tile.remove();
	views.delete(consumer.id);
	if (views.size === 0) empty.style.display = 'block';
}

function refreshButtons(room, view) {
	const current = room.consumerLayers.get(view.consumer.id);
	for (const button of view.buttons) {
		const s = Number(button.dataset.spatial);
		const t = Number(button.dataset.temporal);
		button.classList.toggle('current', Boolean(current && current.spatialLayer === s && current.temporalLayer === t));
		button.classList.toggle('preferred', Boolean(view.preferred && view.preferred.spatialLayer === s && view.preferred.temporalLayer === t));
	}
}

function formatBitrate(bps) {
	if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mbit/s`;
	return `${Math.round(bps / 1e3)} kbit/s`;
}

async function refreshStats(room) {
	for (const view of views.values()) {
		let inbound;
		try {
			const report = await view.consumer.getStats();
			inbound = [...report.values()].find((s) => s.type === 'inbound-rtp');
		} catch (error) {
			continue;
		}
		if (!inbound) continue;
		const now = inbound.timestamp;
		let bitrate = 0;
		if (view.last && now > view.last.timestamp) {
			bitrate = (8 * (inbound.bytesReceived - view.last.bytesReceived) * 1000) / (now - view.last.timestamp);
		}
		view.last = { timestamp: now, bytesReceived: inbound.bytesReceived };
		view.bitrate = bitrate;
		if (view.consumer.kind === 'video') {
			const layers = room.consumerLayers.get(view.consumer.id);
			const layer = layers && layers.spatialLayer !== null && layers.spatialLayer !== undefined
				? `S${layers.spatialLayer}T${layers.temporalLayer ?? 0}` : 'none';
			const size = inbound.frameWidth ? `${inbound.frameWidth}x${inbound.frameHeight}` : '-';
			const fps = inbound.framesPerSecond !== undefined ? inbound.framesPerSecond.toFixed(0) : '0';
			view.stats.textContent =
				`layer ${layer}   ${size}   ${fps} fps   ${formatBitrate(bitrate)}\n` +
				`frames ${inbound.framesDecoded || 0}   freezes ${inbound.freezeCount || 0}   lost ${inbound.packetsLost || 0}`;
			view.shown = { layer, width: inbound.frameWidth, height: inbound.frameHeight, fps: inbound.framesPerSecond, bitrate };
			refreshButtons(room, view);
		} else {
			const level = inbound.audioLevel || 0;
			view.meter.style.width = `${Math.min(100, Math.round(level * 300))}%`;
			view.stats.textContent = `level ${level.toFixed(3)}   ${formatBitrate(bitrate)}`;
			view.shown = { level, bitrate };
		}
	}
}

async function main() {
	if (!roomId) {
		setStatus('no room: open /watch?roomId=ROOM');
		window.watchState.error = 'no roomId';
		return;
	}
	document.getElementById('room').textContent = roomId;
	const room = new Room(roomUrlFromPage(roomId, `watch-${randomId()}`), {
		produce: false,
		consume: true,
		displayName: 'watch page',
		handlers: {
			onConsumer: (consumer) => addView(room, consumer),
			onConsumerClosed: (consumer) => removeView(consumer),
			onClose: (reason) => setStatus(reason),
		},
	});
	window.watchState.room = room;
	try {
		await room.join();
	} catch (error) {
		setStatus(`cannot join: ${error}`);
		window.watchState.error = String(error);
		return;
	}
	window.watchState.joined = true;
	setStatus(`joined as a viewer (mediasoup-client ${room.device.handlerName})`);
	setInterval(() => refreshStats(room).catch(() => {}), 1000);
}

main();
