// The test peer page: window.peerApi, called by driver.js (puppeteer) on behalf of the Python
// tests (tests/browser/peer.py). Every function returns JSON-compatible values.

import { Room, statsList, trackStreams } from './room.js';

let room = null;
const media = new Map(); // consumer id -> <video>/<audio> element
const monitors = new Map(); // consumer or producer id -> {timer, samples}
const frameTimes = new Map(); // consumer id -> presentation times (ms) of rendered frames
const dataReceived = new Map(); // data consumer id -> {received, mismatch, lastAt}
const log = [];
// The room's notifications as they came ({at: page ms, method, data}), newest 5000.
const notifications = [];
// createWebRtcTransport answers held for the test to rewrite (join's holdTransportInfo):
// direction -> {info, provide}.
const heldTransportInfo = new Map();

function note(text) {
	log.push(`${new Date().toISOString()} ${text}`);
	if (log.length > 200) log.shift();
}

// The message the test suite sends and expects at `index` (same rule as the Python side):
// odd indexes text, even ones binary, sizes from 1 to 3000 bytes; with a `size`, every
// message binary and of that size (a channel whose protocol is `size:<bytes>`).
function expectedMessage(index, size) {
	return `${index}:`.padEnd(size || 1 + ((index * 7919) % 3000), 'x');
}

function isBinaryAt(index, size) {
	return Boolean(size) || index % 2 === 0;
}

function messageAt(index, size) {
	const text = expectedMessage(index, size);
	return isBinaryAt(index, size) ? new TextEncoder().encode(text) : text;
}

function sizeOfProtocol(protocol) {
	const match = /^size:(\d+)$/.exec(protocol || '');
	return match ? Number(match[1]) : undefined;
}

function checkMessage(state, message) {
	const index = state.received;
	let text;
	let binary;
	if (typeof message === 'string') {
		text = message;
		binary = false;
	} else {
		text = new TextDecoder().decode(message);
		binary = true;
	}
	const ok = text === expectedMessage(index, state.size) && binary === isBinaryAt(index, state.size);
	if (!ok && state.mismatch === null) {
		state.mismatch = { index, got: text.slice(0, 24), gotLength: text.length, binary };
	}
	state.received += 1;
	state.lastAt = performance.now();
}

function attachMedia(consumer) {
	const element = document.createElement(consumer.kind === 'video' ? 'video' : 'audio');
	element.autoplay = true;
	element.playsInline = true;
	element.muted = consumer.kind === 'video';
	element.srcObject = new MediaStream([consumer.track]);
	element.dataset.consumerId = consumer.id;
	if (consumer.kind === 'video') {
		element.width = 320;
		const times = [];
		frameTimes.set(consumer.id, times);
		const onFrame = (now) => {
			times.push(now);
			if (times.length > 20000) times.splice(0, 10000);
			if (!consumer.closed) element.requestVideoFrameCallback(onFrame);
		};
		element.requestVideoFrameCallback(onFrame);
	}
	document.getElementById('media').appendChild(element);
	element.play().catch((error) => note(`play() failed: ${error}`));
	media.set(consumer.id, element);
}

function consumerInfo(consumer) {
	return {
		id: consumer.id,
		producerId: consumer.producerId,
		kind: consumer.kind,
		peerId: consumer.appData.peerId,
		type: consumer.appData.type,
		trackId: consumer.track.id,
		streamIds: trackStreams.get(consumer.track.id) || [],
		msid: consumer.rtpParameters.msid || null,
		closed: consumer.closed,
		paused: consumer.paused,
		layers: room ? room.consumerLayers.get(consumer.id) || null : null,
		createdAt: consumer.appData.createdAt,
	};
}

function entity(id) {
	const found = room.consumers.get(id) || room.producers.get(id)
		|| room.dataProducers.get(id) || room.dataConsumers.get(id);
	if (!found) throw new Error(`no consumer, producer or data channel with id ${id}`);
	return found;
}

const PICKED_FIELDS = [
	'type', 'kind', 'ssrc', 'rid', 'mid', 'codecId', 'mimeType', 'framesPerSecond', 'frameWidth',
	'frameHeight', 'framesDecoded', 'framesReceived', 'framesDropped', 'keyFramesDecoded',
	'framesEncoded', 'framesSent', 'keyFramesEncoded', 'freezeCount', 'totalFreezesDuration',
	'pauseCount', 'totalPauseDuration', 'audioLevel', 'totalAudioEnergy', 'concealedSamples',
	'totalSamplesReceived', 'silentConcealedSamples', 'packetsReceived', 'packetsLost',
	'bytesReceived', 'packetsSent', 'bytesSent', 'nackCount', 'pliCount', 'firCount', 'jitter',
	'qualityLimitationReason', 'scalabilityMode', 'encoderImplementation', 'decoderImplementation',
	'targetBitrate', 'active', 'timestamp', 'frames', 'width', 'height', 'trackIdentifier',
];

function pick(entry) {
	const out = {};
	for (const field of PICKED_FIELDS) if (entry[field] !== undefined) out[field] = entry[field];
	return out;
}

// The inbound-rtp / outbound-rtp entries of a consumer or producer, with their codec's mimeType,
// and a producer's media-source (what the camera delivered: frames, framesPerSecond, size).
async function rtpStats(id) {
	const entries = await statsList(entity(id));
	const codecs = new Map(entries.filter((e) => e.type === 'codec').map((e) => [e.id, e.mimeType]));
	return entries
		.filter((e) => e.type === 'inbound-rtp' || e.type === 'outbound-rtp' || e.type === 'media-source')
		.map((e) => pick({ ...e, mimeType: codecs.get(e.codecId) }));
}

async function camera({ width = 640, height = 480, frameRate = 30 }) {
	const stream = await navigator.mediaDevices.getUserMedia({
		video: { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: frameRate } },
	});
	return stream.getVideoTracks()[0];
}

function requireRoom() {
	if (!room || room.closed) throw new Error('not in a room (call join first)');
	return room;
}

window.peerApi = {
	// holdTransportInfo: directions ('send', 'recv') whose createWebRtcTransport answer waits,
	// in pendingTransportInfo(), until the test gives it back (rewritten) with
	// provideTransportInfo(): how a test puts a relay's candidates in, as our client's
	// RoomClient.join(transportInfoHook=...) does.
	async join({ url, produce = true, consume = true, displayName = 'chromium', holdTransportInfo = [] }) {
		if (room && !room.closed) throw new Error('already joined');
		const hold = new Set(holdTransportInfo);
		room = new Room(url, {
			produce,
			consume,
			displayName,
			transportInfoHook: (direction, info) => {
				if (!hold.has(direction)) return info;
				return new Promise((resolve) => heldTransportInfo.set(direction, { info, provide: resolve }));
			},
			handlers: {
				onNotification: (method, data) => {
					notifications.push({ at: performance.now(), method, data });
					if (notifications.length > 5000) notifications.shift();
				},
				onConsumer: (consumer) => {
					consumer.appData.createdAt = performance.now();
					attachMedia(consumer);
					note(`consumer ${consumer.id} ${consumer.kind}`);
				},
				onConsumerClosed: (consumer) => {
					const element = media.get(consumer.id);
					if (element) element.remove();
					media.delete(consumer.id);
				},
				onDataConsumer: (dataConsumer) => {
					const state = { received: 0, mismatch: null, lastAt: null, size: sizeOfProtocol(dataConsumer.protocol) };
					dataReceived.set(dataConsumer.id, state);
					dataConsumer.on('message', (message) => checkMessage(state, message));
				},
				onClose: (reason) => note(`room closed: ${reason}`),
			},
		});
		await room.join();
		return { peers: [...room.peers.keys()], handlerName: room.device.handlerName };
	},

	async codecs() {
		return requireRoom().device.sendRtpCapabilities.codecs.map((c) => ({
			mimeType: c.mimeType, parameters: c.parameters,
		}));
	},

	// The fake camera: VP8 simulcast (encodings given), H264 (codec "H264") or one encoding
	// with a scalabilityMode.
	// codecParameters picks among codecs of one name (H264 profiles), e.g.
	// {"profile-level-id": "42e01f"}.
	async produceVideo({ codec = 'VP8', codecParameters = {}, encodings, width, height, frameRate, appData = {} } = {}) {
		const current = requireRoom();
		const wanted = `video/${codec}`.toLowerCase();
		const matches = (c) => c.mimeType.toLowerCase() === wanted
			&& Object.entries(codecParameters).every(([key, value]) => (c.parameters || {})[key] === value);
		const chosen = current.device.sendRtpCapabilities.codecs.find(matches);
		if (!chosen) throw new Error(`the browser cannot send ${codec} ${JSON.stringify(codecParameters)} to this router`);
		const track = await camera({ width, height, frameRate });
		const options = { track, codec: chosen, appData: { ...appData, source: 'webcam' } };
		if (encodings) options.encodings = encodings;
		const producer = await current.sendTransport.produce(options);
		current.producers.set(producer.id, producer);
		return { id: producer.id, rtpParameters: producer.rtpParameters };
	},

	async produceAudio({ appData = {} } = {}) {
		const current = requireRoom();
		const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
		const producer = await current.sendTransport.produce({
			track: stream.getAudioTracks()[0], appData: { ...appData, source: 'mic' },
		});
		current.producers.set(producer.id, producer);
		return { id: producer.id, rtpParameters: producer.rtpParameters };
	},

	async produceData({ label = 'chat', protocol = '', ordered = true, maxRetransmits, maxPacketLifeTime } = {}) {
		const current = requireRoom();
		const options = { label, protocol, ordered };
		if (maxRetransmits !== undefined) options.maxRetransmits = maxRetransmits;
		if (maxPacketLifeTime !== undefined) options.maxPacketLifeTime = maxPacketLifeTime;
		const dataProducer = await current.sendTransport.produceData(options);
		current.dataProducers.set(dataProducer.id, dataProducer);
		if (dataProducer.readyState !== 'open') {
			await new Promise((resolve, reject) => {
				dataProducer.on('open', resolve);
				dataProducer.on('error', reject);
				setTimeout(() => reject(new Error('data channel did not open within 10 s')), 10000);
			});
		}
		return { id: dataProducer.id, sctpStreamParameters: dataProducer.sctpStreamParameters };
	},

	// Sends messages 0..count-1 of the test rule, waiting whenever 1 MB is buffered.
	// `rate` (messages/s): paced in 20 ms batches, as an application must pace through a
	// mediasoup 3.8 router, which drops what it cannot queue toward a consumer; 0: a burst.
	async sendMessages({ dataProducerId, count, rate = 0, size }) {
		const dataProducer = entity(dataProducerId);
		dataProducer.bufferedAmountLowThreshold = 64 * 1024;
		const started = performance.now();
		for (let index = 0; index < count; index++) {
			if (rate > 0 && index % Math.max(1, Math.round(rate / 50)) === 0) {
				const due = started + (index / rate) * 1000;
				const wait = due - performance.now();
				if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
			}
			dataProducer.send(messageAt(index, size));
			if (dataProducer.bufferedAmount > 1024 * 1024) {
				await new Promise((resolve, reject) => {
					const timer = setTimeout(() => reject(new Error('bufferedamountlow never came')), 10000);
					dataProducer.once('bufferedamountlow', () => { clearTimeout(timer); resolve(); });
				});
			}
		}
		return { sent: count, bufferedAmount: dataProducer.bufferedAmount };
	},

	pendingTransportInfo() {
		return [...heldTransportInfo.entries()].map(([direction, { info }]) => ({ direction, info }));
	},

	provideTransportInfo({ direction, info }) {
		const held = heldTransportInfo.get(direction);
		if (!held) throw new Error(`no ${direction} transport info is held`);
		heldTransportInfo.delete(direction);
		held.provide(info);
		return {};
	},

	notifications({ since = 0 } = {}) {
		return notifications.filter((n) => n.at >= since);
	},

	transports() {
		const current = requireRoom();
		return {
			send: current.sendTransport ? current.sendTransport.id : null,
			recv: current.recvTransport ? current.recvTransport.id : null,
		};
	},

	dataConsumers() {
		return [...requireRoom().dataConsumers.values()].map((dc) => ({
			id: dc.id, dataProducerId: dc.dataProducerId, label: dc.label, protocol: dc.protocol,
			readyState: dc.readyState, ...(dataReceived.get(dc.id) || {}),
		}));
	},

	consumers() {
		return [...requireRoom().consumers.values()].map(consumerInfo);
	},

	producers() {
		return [...requireRoom().producers.values()].map((p) => ({
			id: p.id, kind: p.kind, rtpParameters: p.rtpParameters, paused: p.paused,
		}));
	},

	async setPreferredLayers({ consumerId, spatialLayer, temporalLayer }) {
		await requireRoom().setConsumerPreferredLayers(consumerId, spatialLayer, temporalLayer);
		return { at: performance.now() };
	},

	async request({ method, data }) {
		return requireRoom().request(method, data);
	},

	async stats({ id }) {
		return rtpStats(id);
	},

	// Samples an entity's rtp stats every intervalMs, in the page (no round trip per sample).
	monitor({ id, intervalMs = 100 }) {
		if (monitors.has(id)) clearInterval(monitors.get(id).timer);
		const state = { samples: [], timer: null, busy: false };
		state.timer = setInterval(async () => {
			if (state.busy) return;
			state.busy = true;
			try {
				const at = performance.now();
				state.samples.push({ at, stats: await rtpStats(id) });
				if (state.samples.length > 6000) state.samples.splice(0, 3000);
			} catch (error) {
				clearInterval(state.timer);
			} finally {
				state.busy = false;
			}
		}, intervalMs);
		monitors.set(id, state);
		return { at: performance.now() };
	},

	samples({ id, since = 0 }) {
		const state = monitors.get(id);
		if (!state) throw new Error(`no monitor for ${id}`);
		return state.samples.filter((s) => s.at >= since);
	},

	frameTimes({ consumerId, since = 0 }) {
		return (frameTimes.get(consumerId) || []).filter((t) => t >= since);
	},

	now() {
		return performance.now();
	},

	log() {
		return log.slice();
	},

	close() {
		for (const state of monitors.values()) clearInterval(state.timer);
		monitors.clear();
		if (room) room.close('closed by the test');
		return {};
	},
};
