#!/usr/bin/env node
'use strict';

/**
 * A small mediasoup room server speaking mediasoup-demo's protoo protocol, for the tests,
 * benchmarks and CLI of mediasoup-client for Python. It listens on 127.0.0.1 only.
 *
 *   MEDIASOUP_WORKER_BIN=/path/to/mediasoup-worker node server.js [--port N]
 *
 * Prints "LISTENING <port>" on stdout once it accepts connections (port 0 = any free port).
 * URL: ws://127.0.0.1:<port>/?roomId=<room>&peerId=<peer>   (protoo subprotocol "protoo")
 *
 * Requests are those of mediasoup-demo's Room.js, plus a few test-oriented extras
 * (getProducerInfo, getConsumerInfo, getTransportInfo, closeTransport, enableConsumerTraceEvent)
 * and plain RTP consumers, as server-side recorders (ffmpeg, GStreamer) use them:
 * createPlainTransport, connectPlainTransport, consumePlain (see handleRequest). A bad request
 * gets a protoo error answer; nothing a client sends can take the process down.
 *
 * Worker logs: SFU_LOG_LEVEL (--log-level) and SFU_LOG_TAGS (--log-tags, comma separated, e.g.
 * "simulcast,rtp,rtcp,score"); with DEBUG='mediasoup*' they are printed on stderr.
 *
 * The same port serves the browser pages over HTTP (built by scripts/install-browser.sh):
 *   http://127.0.0.1:<port>/watch?roomId=<room>   watch a room (every producer's video and audio)
 *   http://127.0.0.1:<port>/peer.html             the test peer the browser tests drive
 */

// mediasoup's debug logs (DEBUG='mediasoup*') go to console.info, i.e. stdout, which the
// launcher stops reading after "LISTENING": a full pipe would stall the server. Keep stdout for
// that one line and send every log to stderr (before mediasoup binds console.info).
console.info = console.error;
console.log = console.error;

const fs = require('fs');
const http = require('http');
const path = require('path');
const url = require('url');
const mediasoup = require('mediasoup');
const protoo = require('protoo-server');

const LISTEN_IP = '127.0.0.1';
// libwebrtc senders (browsers) ignore a key frame request that comes within 300 ms of their
// last key frame, and mediasoup 3.8.4 then waits a whole second before asking again: key
// frame requests of ours for one producer are spaced at least this much.
const KEY_FRAME_REQUEST_SPACING_MS = 350;
const BROWSER_DIR = process.env.SFU_BROWSER_DIR || path.join(__dirname, '..', 'browser');
// mediasoup's own default (262 144, what mediasoup-demo and real deployments run) unless
// SFU_SCTP_SEND_BUFFER_SIZE says otherwise: the tests must see what users see.
const SCTP_SEND_BUFFER_SIZE = process.env.SFU_SCTP_SEND_BUFFER_SIZE
	? Number(process.env.SFU_SCTP_SEND_BUFFER_SIZE)
	: undefined;

function parseArgs(argv) {
	const options = {
		port: Number(process.env.SFU_PORT || 0),
		rtcMinPort: Number(process.env.SFU_RTC_MIN_PORT || 40000),
		rtcMaxPort: Number(process.env.SFU_RTC_MAX_PORT || 49999),
		logLevel: process.env.SFU_LOG_LEVEL || 'warn',
		logTags: (process.env.SFU_LOG_TAGS || '').split(',').filter(Boolean),
		exitWithStdin: false,
	};
	for (let i = 2; i < argv.length; i++) {
		const arg = argv[i];
		const next = () => argv[++i];
		if (arg === '--port') options.port = Number(next());
		else if (arg === '--rtc-min-port') options.rtcMinPort = Number(next());
		else if (arg === '--rtc-max-port') options.rtcMaxPort = Number(next());
		else if (arg === '--log-level') options.logLevel = next();
		else if (arg === '--log-tags') options.logTags = next().split(',').filter(Boolean);
		else if (arg === '--exit-with-stdin') options.exitWithStdin = true;
		else throw new Error(`unknown argument ${arg}`);
	}
	return options;
}

// The codecs of mediasoup-demo's router, simulcast-capable.
const MEDIA_CODECS = [
	{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
	{
		kind: 'video', mimeType: 'video/VP8', clockRate: 90000,
		parameters: { 'x-google-start-bitrate': 1000 },
	},
	{
		kind: 'video', mimeType: 'video/VP9', clockRate: 90000,
		parameters: { 'profile-id': 2, 'x-google-start-bitrate': 1000 },
	},
	{
		kind: 'video', mimeType: 'video/h264', clockRate: 90000,
		parameters: {
			'packetization-mode': 1, 'profile-level-id': '4d0032',
			'level-asymmetry-allowed': 1, 'x-google-start-bitrate': 1000,
		},
	},
	{
		kind: 'video', mimeType: 'video/h264', clockRate: 90000,
		parameters: {
			'packetization-mode': 1, 'profile-level-id': '42e01f',
			'level-asymmetry-allowed': 1, 'x-google-start-bitrate': 1000,
		},
	},
];

// mediasoup-client 3.24 has no SCTP capabilities (the stream counts are negotiated in the
// association), and the newest mediasoup-demo signaling leaves them out of createWebRtcTransport
// and join while its data channels work: a request without the field gets SCTP with
// mediasoup's default stream counts. Older clients (and ours) send their capabilities, or null
// for "no data channels".
const DEFAULT_SCTP_CAPABILITIES = { numStreams: { OS: 1024, MIS: 1024 } };

function sctpCapabilitiesOf(data) {
	if (!Object.prototype.hasOwnProperty.call(data, 'sctpCapabilities')) return DEFAULT_SCTP_CAPABILITIES;
	return data.sctpCapabilities || undefined;
}

class RequestError extends Error {
	constructor(code, reason) {
		super(reason);
		this.code = code;
	}
}

function required(data, field, type) {
	const value = data ? data[field] : undefined;
	if (value === undefined || value === null || (type && typeof value !== type)) {
		throw new RequestError(400, `missing or invalid "${field}"`);
	}
	return value;
}

// mediasoup 3.8 drops a message that does not fit the association's send buffer and still counts
// it in messagesSent: count the drops (getDataConsumerInfo) and log them, once a second at most.
const dropsByDataConsumer = new WeakMap();
function countDrops(dataConsumer) {
	let logged = 0;
	let timer;
	dropsByDataConsumer.set(dataConsumer, 0);
	dataConsumer.on('sctpsendbufferfull', () => {
		dropsByDataConsumer.set(dataConsumer, dropsByDataConsumer.get(dataConsumer) + 1);
		if (timer) return;
		timer = setTimeout(() => {
			timer = undefined;
			const total = dropsByDataConsumer.get(dataConsumer);
			console.error(`dataConsumer ${dataConsumer.id}: ${total - logged} messages dropped (sctpsendbufferfull), ${total} in all`);
			logged = total;
		}, 1000);
	});
	dataConsumer.observer.on('close', () => clearTimeout(timer));
}

class Room {
	static async create(worker, roomId) {
		const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
		return new Room(roomId, router);
	}

	constructor(roomId, router) {
		this.id = roomId;
		this.router = router;
		this.protooRoom = new protoo.Room();
		this.closed = false;
		// Producer id -> when a key frame was last asked of it (ms).
		this.keyFrameRequestedAt = new Map();
	}

	// A key frame for `consumer`, asked at once or as soon as the spacing allows.
	requestKeyFrameSpaced(consumer) {
		const last = this.keyFrameRequestedAt.get(consumer.producerId) || 0;
		const wait = Math.max(0, last + KEY_FRAME_REQUEST_SPACING_MS - Date.now());
		this.keyFrameRequestedAt.set(consumer.producerId, Date.now() + wait);
		const request = () => {
			if (!consumer.closed) consumer.requestKeyFrame().catch(() => {});
		};
		if (wait > 0) setTimeout(request, wait);
		else request();
	}

	producerById(producerId) {
		for (const peer of this.protooRoom.peers) {
			const producer = peer.data.producers.get(producerId);
			if (producer) return producer;
		}
		return undefined;
	}

	close() {
		if (this.closed) return;
		this.closed = true;
		this.protooRoom.close();
		this.router.close();
	}

	handlePeer(peerId, protooTransport) {
		const existing = this.protooRoom.getPeer(peerId);
		if (existing) existing.close();
		const peer = this.protooRoom.createPeer(peerId, protooTransport);
		Object.assign(peer.data, {
			joined: false,
			displayName: undefined,
			device: undefined,
			rtpCapabilities: undefined,
			sctpCapabilities: undefined,
			transports: new Map(),
			producers: new Map(),
			consumers: new Map(),
			dataProducers: new Map(),
			dataConsumers: new Map(),
		});
		peer.on('request', (request, accept, reject) => {
			this.handleRequest(peer, request)
				.then((answer) => accept(answer))
				.catch((error) => {
					const code = error instanceof RequestError ? error.code : 500;
					reject(code, String(error && error.message ? error.message : error));
				});
		});
		peer.on('close', () => {
			if (this.closed) return;
			if (peer.data.joined) {
				for (const other of this.joinedPeers({ excludePeer: peer })) {
					other.notify('peerClosed', { peerId: peer.id }).catch(() => {});
				}
			}
			for (const transport of peer.data.transports.values()) transport.close();
		});
	}

	joinedPeers({ excludePeer } = {}) {
		return this.protooRoom.peers.filter((p) => p.data.joined && p !== excludePeer);
	}

	transportOf(peer, transportId) {
		const transport = peer.data.transports.get(transportId);
		if (!transport) throw new RequestError(404, `transport with id "${transportId}" not found`);
		return transport;
	}

	entityOf(peer, map, id, what) {
		const entity = peer.data[map].get(id);
		if (!entity) throw new RequestError(404, `${what} with id "${id}" not found`);
		return entity;
	}

	async handleRequest(peer, request) {
		const data = request.data || {};
		switch (request.method) {
			case 'getRouterRtpCapabilities':
				return this.router.rtpCapabilities;

			case 'join': {
				if (peer.data.joined) throw new RequestError(409, 'peer already joined');
				peer.data.joined = true;
				peer.data.displayName = data.displayName;
				peer.data.device = data.device;
				peer.data.rtpCapabilities = data.rtpCapabilities;
				peer.data.sctpCapabilities = sctpCapabilitiesOf(data);
				const others = this.joinedPeers({ excludePeer: peer });
				const peerInfos = others.map((p) => ({
					id: p.id, displayName: p.data.displayName, device: p.data.device,
				}));
				// Answer first, then push what already exists to the newcomer.
				setImmediate(() => {
					for (const other of others) {
						for (const producer of other.data.producers.values()) {
							this.createConsumer(peer, other, producer);
						}
						for (const dataProducer of other.data.dataProducers.values()) {
							this.createDataConsumer(peer, other, dataProducer);
						}
						other.notify('newPeer', {
							id: peer.id, displayName: peer.data.displayName, device: peer.data.device,
						}).catch(() => {});
					}
				});
				return { peers: peerInfos };
			}

			case 'createWebRtcTransport': {
				const { forceTcp, producing, consuming } = data;
				const sctpCapabilities = sctpCapabilitiesOf(data);
				const options = {
					listenIps: [{ ip: LISTEN_IP }],
					enableUdp: !forceTcp,
					enableTcp: true,
					preferUdp: true,
					initialAvailableOutgoingBitrate: 1000000,
					enableSctp: Boolean(sctpCapabilities),
					numSctpStreams: sctpCapabilities ? sctpCapabilities.numStreams : undefined,
					// mediasoup 3.8 drops a DataConsumer message that does not fit this buffer
					// (sctpsendbufferfull): there is no backpressure toward the producer.
					...(SCTP_SEND_BUFFER_SIZE ? { sctpSendBufferSize: SCTP_SEND_BUFFER_SIZE } : {}),
					appData: { producing, consuming },
				};
				if (forceTcp) {
					options.enableUdp = false;
					options.enableTcp = true;
				}
				const transport = await this.router.createWebRtcTransport(options);
				peer.data.transports.set(transport.id, transport);
				transport.on('dtlsstatechange', (state) => {
					if (state === 'failed' || state === 'closed') {
						console.error(`transport ${transport.id} dtls ${state}`);
					}
				});
				transport.observer.on('close', () => peer.data.transports.delete(transport.id));
				// mediasoup 3.8.4 resets the transport's consumers whenever ICE reaches connected
				// or completed while DTLS is already up (a browser's ICE goes connected ->
				// completed just after DTLS): a simulcast consumer then drops everything until a
				// key frame that nobody requests, and the browser shows one frame, then nothing
				// until its own PLI about 3 s later. Ask for that key frame.
				transport.on('icestatechange', (iceState) => {
					if ((iceState !== 'connected' && iceState !== 'completed') || transport.dtlsState !== 'connected') return;
					for (const consumer of peer.data.consumers.values()) {
						if (consumer.kind === 'video' && consumer.appData.transportId === transport.id) {
							this.requestKeyFrameSpaced(consumer);
						}
					}
				});
				return {
					id: transport.id,
					iceParameters: transport.iceParameters,
					iceCandidates: transport.iceCandidates,
					dtlsParameters: transport.dtlsParameters,
					sctpParameters: transport.sctpParameters,
				};
			}

			case 'connectWebRtcTransport': {
				const transport = this.transportOf(peer, required(data, 'transportId', 'string'));
				await transport.connect({ dtlsParameters: required(data, 'dtlsParameters', 'object') });
				return {};
			}

			case 'restartIce': {
				const transport = this.transportOf(peer, required(data, 'transportId', 'string'));
				return transport.restartIce();
			}

			case 'closeTransport': {
				this.transportOf(peer, required(data, 'transportId', 'string')).close();
				return {};
			}

			// A PlainTransport on 127.0.0.1 (no SCTP, no SRTP), as recorders use: rtcpMux
			// (default true) and comedia (default false) as in mediasoup. Answers its local
			// tuple(s): RTP (and RTCP with rtcpMux) go to tuple.localPort.
			case 'createPlainTransport': {
				const transport = await this.router.createPlainTransport({
					listenIp: { ip: LISTEN_IP },
					rtcpMux: data.rtcpMux !== undefined ? Boolean(data.rtcpMux) : true,
					comedia: Boolean(data.comedia),
					enableSctp: false,
					appData: { plain: true },
				});
				peer.data.transports.set(transport.id, transport);
				transport.observer.on('close', () => peer.data.transports.delete(transport.id));
				return { id: transport.id, tuple: transport.tuple, rtcpTuple: transport.rtcpTuple };
			}

			// Where the router sends a PlainTransport's RTP (ip, port) and, without rtcpMux, RTCP
			// (rtcpPort). Only 127.0.0.1 peers: the room server listens on nothing else.
			case 'connectPlainTransport': {
				const transport = this.transportOf(peer, required(data, 'transportId', 'string'));
				if (!transport.appData.plain) throw new RequestError(400, 'not a plain transport');
				const ip = required(data, 'ip', 'string');
				if (ip !== LISTEN_IP) throw new RequestError(400, `ip must be ${LISTEN_IP}`);
				await transport.connect({ ip, port: required(data, 'port', 'number'), rtcpPort: data.rtcpPort });
				return { tuple: transport.tuple, rtcpTuple: transport.rtcpTuple };
			}

			// A consumer of any producer of the room on one of this peer's plain transports,
			// answered (not pushed as newConsumer): {producerId, rtpCapabilities, paused=false,
			// preferredLayers?, traceEventTypes?}. The usual consumer requests work on it
			// (getConsumerInfo/Stats, setConsumerPreferredLayers, resumeConsumer, ...) and the usual
			// notifications come (consumerLayersChanged, consumerScore, consumerTrace, ...).
			case 'consumePlain': {
				const transport = this.transportOf(peer, required(data, 'transportId', 'string'));
				if (!transport.appData.plain) throw new RequestError(400, 'not a plain transport');
				const producerId = required(data, 'producerId', 'string');
				const rtpCapabilities = required(data, 'rtpCapabilities', 'object');
				if (!this.producerById(producerId)) throw new RequestError(404, `producer with id "${producerId}" not found`);
				if (!this.router.canConsume({ producerId, rtpCapabilities })) {
					throw new RequestError(400, 'these rtpCapabilities cannot consume the producer');
				}
				const consumer = await transport.consume({
					producerId,
					rtpCapabilities,
					paused: true,
					preferredLayers: data.preferredLayers,
					appData: { transportId: transport.id, plain: true },
				});
				this.registerConsumer(peer, consumer);
				if (Array.isArray(data.traceEventTypes) && data.traceEventTypes.length) {
					await consumer.enableTraceEvent(data.traceEventTypes);
				}
				if (!data.paused) await consumer.resume();
				return {
					id: consumer.id,
					producerId,
					kind: consumer.kind,
					type: consumer.type,
					rtpParameters: consumer.rtpParameters,
					preferredLayers: consumer.preferredLayers,
				};
			}

			case 'enableConsumerTraceEvent': {
				const consumer = this.entityOf(peer, 'consumers', required(data, 'consumerId', 'string'), 'consumer');
				await consumer.enableTraceEvent(required(data, 'types', 'object'));
				return {};
			}

			case 'produce': {
				if (!peer.data.joined) throw new RequestError(403, 'peer not yet joined');
				const transport = this.transportOf(peer, required(data, 'transportId', 'string'));
				const kind = required(data, 'kind', 'string');
				const rtpParameters = required(data, 'rtpParameters', 'object');
				const appData = { ...(data.appData || {}), peerId: peer.id };
				const producer = await transport.produce({ kind, rtpParameters, appData });
				peer.data.producers.set(producer.id, producer);
				producer.observer.on('close', () => peer.data.producers.delete(producer.id));
				producer.on('score', (score) => {
					peer.notify('producerScore', { producerId: producer.id, score }).catch(() => {});
				});
				setImmediate(() => {
					for (const other of this.joinedPeers({ excludePeer: peer })) {
						this.createConsumer(other, peer, producer);
					}
				});
				return { id: producer.id };
			}

			case 'closeProducer': {
				this.entityOf(peer, 'producers', required(data, 'producerId', 'string'), 'producer').close();
				return {};
			}

			case 'pauseProducer': {
				await this.entityOf(peer, 'producers', required(data, 'producerId', 'string'), 'producer').pause();
				return {};
			}

			case 'resumeProducer': {
				await this.entityOf(peer, 'producers', required(data, 'producerId', 'string'), 'producer').resume();
				return {};
			}

			case 'pauseConsumer': {
				await this.entityOf(peer, 'consumers', required(data, 'consumerId', 'string'), 'consumer').pause();
				return {};
			}

			case 'resumeConsumer': {
				await this.entityOf(peer, 'consumers', required(data, 'consumerId', 'string'), 'consumer').resume();
				return {};
			}

			case 'setConsumerPreferredLayers': {
				const consumer = this.entityOf(peer, 'consumers', required(data, 'consumerId', 'string'), 'consumer');
				await consumer.setPreferredLayers({
					spatialLayer: required(data, 'spatialLayer', 'number'),
					temporalLayer: data.temporalLayer,
				});
				return {};
			}

			case 'setConsumerPriority': {
				const consumer = this.entityOf(peer, 'consumers', required(data, 'consumerId', 'string'), 'consumer');
				await consumer.setPriority(required(data, 'priority', 'number'));
				return {};
			}

			case 'requestConsumerKeyFrame': {
				await this.entityOf(peer, 'consumers', required(data, 'consumerId', 'string'), 'consumer').requestKeyFrame();
				return {};
			}

			case 'produceData': {
				if (!peer.data.joined) throw new RequestError(403, 'peer not yet joined');
				const transport = this.transportOf(peer, required(data, 'transportId', 'string'));
				const dataProducer = await transport.produceData({
					sctpStreamParameters: required(data, 'sctpStreamParameters', 'object'),
					label: data.label,
					protocol: data.protocol,
					appData: { ...(data.appData || {}), peerId: peer.id },
				});
				peer.data.dataProducers.set(dataProducer.id, dataProducer);
				dataProducer.observer.on('close', () => peer.data.dataProducers.delete(dataProducer.id));
				setImmediate(() => {
					for (const other of this.joinedPeers({ excludePeer: peer })) {
						this.createDataConsumer(other, peer, dataProducer);
					}
				});
				return { id: dataProducer.id };
			}

			case 'getTransportStats':
				return this.transportOf(peer, required(data, 'transportId', 'string')).getStats();

			case 'getTransportInfo':
				return this.transportOf(peer, required(data, 'transportId', 'string')).dump();

			case 'getProducerStats':
				return this.entityOf(peer, 'producers', required(data, 'producerId', 'string'), 'producer').getStats();

			case 'getProducerInfo':
				return this.entityOf(peer, 'producers', required(data, 'producerId', 'string'), 'producer').dump();

			case 'getConsumerStats':
				return this.entityOf(peer, 'consumers', required(data, 'consumerId', 'string'), 'consumer').getStats();

			case 'getConsumerInfo':
				return this.entityOf(peer, 'consumers', required(data, 'consumerId', 'string'), 'consumer').dump();

			case 'getDataProducerStats':
				return this.entityOf(peer, 'dataProducers', required(data, 'dataProducerId', 'string'), 'data producer').getStats();

			// Test-oriented: what the router dropped toward this consumer (see countDrops).
			case 'getDataConsumerInfo': {
				const dataConsumer = this.entityOf(peer, 'dataConsumers', required(data, 'dataConsumerId', 'string'), 'data consumer');
				return {
					id: dataConsumer.id,
					dataProducerId: dataConsumer.dataProducerId,
					sctpSendBufferFull: dropsByDataConsumer.get(dataConsumer) || 0,
					bufferedAmount: await dataConsumer.getBufferedAmount(),
				};
			}

			case 'getDataConsumerStats':
				return this.entityOf(peer, 'dataConsumers', required(data, 'dataConsumerId', 'string'), 'data consumer').getStats();

			default:
				throw new RequestError(400, `unknown request.method "${request.method}"`);
		}
	}

	// Keeps `consumer` in the peer's map and tells the peer what happens to it (mediasoup-demo's
	// notifications, plus consumerTrace for the 'trace' events enableConsumerTraceEvent asks
	// for). Returns the peer's notify function.
	registerConsumer(consumerPeer, consumer) {
		consumerPeer.data.consumers.set(consumer.id, consumer);
		const notify = (method, payload) => consumerPeer.notify(method, payload).catch(() => {});
		consumer.observer.on('close', () => consumerPeer.data.consumers.delete(consumer.id));
		consumer.on('transportclose', () => consumerPeer.data.consumers.delete(consumer.id));
		consumer.on('producerclose', () => {
			consumerPeer.data.consumers.delete(consumer.id);
			notify('consumerClosed', { consumerId: consumer.id });
		});
		consumer.on('producerpause', () => notify('consumerPaused', { consumerId: consumer.id }));
		consumer.on('producerresume', () => notify('consumerResumed', { consumerId: consumer.id }));
		consumer.on('score', (score) => notify('consumerScore', { consumerId: consumer.id, score }));
		consumer.on('layerschange', (layers) => notify('consumerLayersChanged', {
			consumerId: consumer.id,
			spatialLayer: layers ? layers.spatialLayer : null,
			temporalLayer: layers ? layers.temporalLayer : null,
		}));
		consumer.on('trace', (trace) => notify('consumerTrace', { consumerId: consumer.id, trace }));
		return notify;
	}

	// A consumer for `consumerPeer`, created paused: the client must accept the newConsumer
	// request before media flows (then the server resumes it), as in mediasoup-demo.
	async createConsumer(consumerPeer, producerPeer, producer) {
		try {
			const caps = consumerPeer.data.rtpCapabilities;
			if (!caps || !this.router.canConsume({ producerId: producer.id, rtpCapabilities: caps })) return;
			const transport = [...consumerPeer.data.transports.values()].find((t) => t.appData.consuming);
			if (!transport) return;
			const consumer = await transport.consume({
				producerId: producer.id, rtpCapabilities: caps, paused: true, appData: { transportId: transport.id },
			});
			const notify = this.registerConsumer(consumerPeer, consumer);
			// mediasoup 3.2x copies the producer's msid into its consumers (one peer's audio and
			// video play as one MediaStream); 3.8.4 drops it, so the room does it.
			const rtpParameters = { ...consumer.rtpParameters };
			if (typeof producer.rtpParameters.msid === 'string') rtpParameters.msid = producer.rtpParameters.msid;
			await consumerPeer.request('newConsumer', {
				peerId: producerPeer.id,
				producerId: producer.id,
				id: consumer.id,
				kind: consumer.kind,
				rtpParameters,
				type: consumer.type,
				appData: producer.appData,
				producerPaused: consumer.producerPaused,
			});
			await consumer.resume();
			// Resuming asks the producer for a key frame.
			this.keyFrameRequestedAt.set(producer.id, Date.now());
			notify('consumerScore', { consumerId: consumer.id, score: consumer.score });
		} catch (error) {
			console.error(`createConsumer failed: ${error}`);
		}
	}

	async createDataConsumer(consumerPeer, producerPeer, dataProducer) {
		try {
			if (!consumerPeer.data.sctpCapabilities) return;
			const transport = [...consumerPeer.data.transports.values()].find((t) => t.appData.consuming);
			if (!transport) return;
			const dataConsumer = await transport.consumeData({ dataProducerId: dataProducer.id });
			consumerPeer.data.dataConsumers.set(dataConsumer.id, dataConsumer);
			dataConsumer.observer.on('close', () => consumerPeer.data.dataConsumers.delete(dataConsumer.id));
			countDrops(dataConsumer);
			dataConsumer.on('dataproducerclose', () => {
				consumerPeer.data.dataConsumers.delete(dataConsumer.id);
				consumerPeer.notify('dataConsumerClosed', { dataConsumerId: dataConsumer.id }).catch(() => {});
			});
			await consumerPeer.request('newDataConsumer', {
				peerId: producerPeer.id,
				dataProducerId: dataProducer.id,
				id: dataConsumer.id,
				sctpStreamParameters: dataConsumer.sctpStreamParameters,
				label: dataConsumer.label,
				protocol: dataConsumer.protocol,
				appData: dataProducer.appData,
			});
		} catch (error) {
			console.error(`createDataConsumer failed: ${error}`);
		}
	}
}

// The browser pages (browser/pages, bundles in browser/dist), read on every request so a
// rebuilt bundle needs no restart.
const PAGES = {
	'/': 'pages/watch.html',
	'/watch': 'pages/watch.html',
	'/watch.html': 'pages/watch.html',
	'/peer.html': 'pages/peer.html',
	'/dist/peer.js': 'dist/peer.js',
	'/dist/watch.js': 'dist/watch.js',
};
const CONTENT_TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8' };

function servePage(req, res) {
	const file = PAGES[url.parse(req.url).pathname];
	if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) {
		res.writeHead(404, { 'Content-Type': 'text/plain' });
		res.end('not found\n');
		return;
	}
	fs.readFile(path.join(BROWSER_DIR, file), (error, body) => {
		if (error) {
			res.writeHead(503, { 'Content-Type': 'text/plain' });
			res.end(`${file} is missing in ${BROWSER_DIR}: run scripts/install-browser.sh\n`);
			return;
		}
		res.writeHead(200, {
			'Content-Type': CONTENT_TYPES[path.extname(file)],
			'Cache-Control': 'no-store',
		});
		res.end(req.method === 'HEAD' ? undefined : body);
	});
}

async function main() {
	const options = parseArgs(process.argv);
	const worker = await mediasoup.createWorker({
		logLevel: options.logLevel,
		logTags: options.logTags,
		rtcMinPort: options.rtcMinPort,
		rtcMaxPort: options.rtcMaxPort,
	});
	worker.on('died', () => {
		console.error('mediasoup worker died, exiting');
		process.exit(1);
	});

	const rooms = new Map();
	const roomCreations = new Map();
	// Concurrent joins of a new room share one creation.
	async function getRoom(roomId) {
		if (rooms.has(roomId)) return rooms.get(roomId);
		if (!roomCreations.has(roomId)) {
			roomCreations.set(roomId, Room.create(worker, roomId).then((room) => {
				rooms.set(roomId, room);
				roomCreations.delete(roomId);
				room.protooRoom.on('close', () => rooms.delete(roomId));
				return room;
			}));
		}
		return roomCreations.get(roomId);
	}

	const httpServer = http.createServer(servePage);
	const wsServer = new protoo.WebSocketServer(httpServer, {
		maxReceivedFrameSize: 960000,
		maxReceivedMessageSize: 960000,
		fragmentOutgoingMessages: true,
		fragmentationThreshold: 960000,
	});
	wsServer.on('connectionrequest', (info, accept, reject) => {
		const query = url.parse(info.request.url, true).query;
		const { roomId, peerId } = query;
		if (!roomId || !peerId) {
			reject(400, 'connection request without roomId and/or peerId');
			return;
		}
		getRoom(String(roomId))
			.then((room) => room.handlePeer(String(peerId), accept()))
			.catch((error) => {
				console.error(`room creation failed: ${error}`);
				reject(500, String(error));
			});
	});

	await new Promise((resolve) => httpServer.listen(options.port, LISTEN_IP, resolve));
	process.stdout.write(`LISTENING ${httpServer.address().port}\n`);

	const shutdown = () => {
		for (const room of rooms.values()) room.close();
		worker.close();
		httpServer.close();
		process.exit(0);
	};
	process.on('SIGTERM', shutdown);
	process.on('SIGINT', shutdown);
	if (options.exitWithStdin) {
		// The launcher holds our stdin open and never writes: its end means the launcher is
		// gone (even killed), and a server nobody owns must not linger.
		process.stdin.on('end', shutdown);
		process.stdin.on('error', shutdown);
		process.stdin.resume();
	}
}

// Whatever a client sends, the server stays up.
process.on('uncaughtException', (error) => console.error(`uncaught exception: ${error && error.stack}`));
process.on('unhandledRejection', (error) => console.error(`unhandled rejection: ${error}`));

main().catch((error) => {
	console.error(`sfu failed to start: ${error && error.stack ? error.stack : error}`);
	process.exit(1);
});
