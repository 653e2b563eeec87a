// One peer of a mediasoup-demo room, in the browser: protoo signaling plus the real
// mediasoup-client, joined the way mediasoup-demo's RoomClient.js joins (capabilities, both
// transports, join; then the server pushes newConsumer / newDataConsumer requests).
// Shared by the test peer page (peer.js) and the page to watch a room (watch.js).

import * as mediasoupClient from 'mediasoup-client';
import * as protooClient from 'protoo-client';

// Which MediaStream(s) each received track landed in, by track id: what a page playing
// one peer's audio and video together relies on (the consumer's msid).
export const trackStreams = new Map();

const NativePeerConnection = window.RTCPeerConnection;
window.RTCPeerConnection = class extends NativePeerConnection {
	constructor(...args) {
		super(...args);
		this.addEventListener('track', (event) => {
			trackStreams.set(event.track.id, event.streams.map((stream) => stream.id));
		});
	}
};

export function randomId() {
	return Math.random().toString(36).slice(2, 10);
}

// The websocket room URL of the server that served this page.
export function roomUrlFromPage(roomId, peerId) {
	const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
	const query = new URLSearchParams({ roomId, peerId });
	return `${scheme}://${window.location.host}/?${query}`;
}

export class Room {
	// transportInfoHook(direction, info) -> info: may rewrite the server's createWebRtcTransport
	// answer before the transport is made (the tests put an impairment relay's candidates in).
	constructor(url, { produce = true, consume = true, displayName = 'chromium', handlers = {}, transportInfoHook = null } = {}) {
		this.url = url;
		this.transportInfoHook = transportInfoHook;
		this.produce = produce;
		this.consume = consume;
		this.displayName = displayName;
		this.handlers = handlers; // onConsumer, onConsumerClosed, onDataConsumer, onNotification, onClose
		this.device = null;
		this.protoo = null;
		this.sendTransport = null;
		this.recvTransport = null;
		this.producers = new Map();
		this.consumers = new Map();
		this.dataProducers = new Map();
		this.dataConsumers = new Map();
		this.consumerLayers = new Map();
		this.peers = new Map();
		this.closed = false;
	}

	async join({ timeoutMs = 10000 } = {}) {
		// protoo-client retries a websocket that does not open; a test wants an answer.
		const transport = new protooClient.WebSocketTransport(this.url, {
			retry: { retries: 1, factor: 1, minTimeout: 500, maxTimeout: 500 },
		});
		this.protoo = new protooClient.Peer(transport);
		await new Promise((resolve, reject) => {
			const timer = setTimeout(() => reject(new Error(`cannot reach ${this.url}`)), timeoutMs);
			this.protoo.on('open', () => { clearTimeout(timer); resolve(); });
			this.protoo.on('failed', () => { clearTimeout(timer); reject(new Error(`cannot reach ${this.url}`)); });
		});
		this.protoo.on('disconnected', () => this.close('the room connection was lost'));
		this.protoo.on('close', () => this.close('the room connection closed'));
		this.protoo.on('request', (request, accept, reject) => {
			this._onRequest(request).then(accept).catch((error) => reject(500, String(error)));
		});
		this.protoo.on('notification', (notification) => this._onNotification(notification));

		const routerRtpCapabilities = await this.request('getRouterRtpCapabilities');
		this.device = new mediasoupClient.Device();
		await this.device.load({ routerRtpCapabilities });
		// mediasoup-client 3.24 has no device.sctpCapabilities (SCTP stream counts are
		// negotiated in the association): the request leaves them out, as mediasoup-demo's does.
		if (this.produce) this.sendTransport = await this._createTransport('send');
		if (this.consume) this.recvTransport = await this._createTransport('recv');
		const answer = await this.request('join', {
			displayName: this.displayName,
			device: { flag: 'chromium', name: 'Chromium', version: mediasoupClient.version },
			rtpCapabilities: this.consume ? this.device.recvRtpCapabilities : undefined,
		});
		for (const peer of (answer && answer.peers) || []) this.peers.set(peer.id, peer);
		return answer;
	}

	request(method, data = {}) {
		if (!this.protoo || this.closed) return Promise.reject(new Error('not connected to the room'));
		return this.protoo.request(method, data);
	}

	async _createTransport(direction) {
		let info = await this.request('createWebRtcTransport', {
			forceTcp: false,
			producing: direction === 'send',
			consuming: direction === 'recv',
		});
		if (this.transportInfoHook) info = await this.transportInfoHook(direction, info);
		const options = {
			id: info.id,
			iceParameters: info.iceParameters,
			iceCandidates: info.iceCandidates,
			dtlsParameters: info.dtlsParameters,
			sctpParameters: info.sctpParameters,
		};
		const transport = direction === 'send'
			? this.device.createSendTransport(options)
			: this.device.createRecvTransport(options);
		transport.on('connect', ({ dtlsParameters }, callback, errback) => {
			this.request('connectWebRtcTransport', { transportId: transport.id, dtlsParameters })
				.then(callback).catch(errback);
		});
		if (direction === 'send') {
			transport.on('produce', ({ kind, rtpParameters, appData }, callback, errback) => {
				this.request('produce', { transportId: transport.id, kind, rtpParameters, appData })
					.then(({ id }) => callback({ id })).catch(errback);
			});
			transport.on('producedata', ({ sctpStreamParameters, label, protocol, appData }, callback, errback) => {
				this.request('produceData', { transportId: transport.id, sctpStreamParameters, label, protocol, appData })
					.then(({ id }) => callback({ id })).catch(errback);
			});
		}
		return transport;
	}

	async _onRequest(request) {
		const data = request.data || {};
		if (request.method === 'newConsumer') {
			if (!this.recvTransport) throw new Error('not consuming');
			// No streamId: mediasoup-client takes the stream from rtpParameters.msid.
			const consumer = await this.recvTransport.consume({
				id: data.id,
				producerId: data.producerId,
				kind: data.kind,
				rtpParameters: data.rtpParameters,
				appData: { ...(data.appData || {}), peerId: data.peerId, type: data.type },
			});
			this.consumers.set(consumer.id, consumer);
			consumer.on('transportclose', () => this.consumers.delete(consumer.id));
			if (this.handlers.onConsumer) this.handlers.onConsumer(consumer);
			return {};
		}
		if (request.method === 'newDataConsumer') {
			if (!this.recvTransport) throw new Error('not consuming');
			const dataConsumer = await this.recvTransport.consumeData({
				id: data.id,
				dataProducerId: data.dataProducerId,
				sctpStreamParameters: data.sctpStreamParameters,
				label: data.label,
				protocol: data.protocol,
				appData: { ...(data.appData || {}), peerId: data.peerId },
			});
			this.dataConsumers.set(dataConsumer.id, dataConsumer);
			if (this.handlers.onDataConsumer) this.handlers.onDataConsumer(dataConsumer);
			return {};
		}
		throw new Error(`unknown request ${request.method}`);
	}

	_onNotification({ method, data }) {
		if (method === 'consumerClosed') {
			const consumer = this.consumers.get(data.consumerId);
			if (consumer) {
				consumer.close();
				this.consumers.delete(data.consumerId);
				if (this.handlers.onConsumerClosed) this.handlers.onConsumerClosed(consumer);
			}
		} else if (method === 'consumerLayersChanged') {
			this.consumerLayers.set(data.consumerId, {
				spatialLayer: data.spatialLayer, temporalLayer: data.temporalLayer,
			});
		} else if (method === 'dataConsumerClosed') {
			const dataConsumer = this.dataConsumers.get(data.dataConsumerId);
			if (dataConsumer) dataConsumer.close();
			this.dataConsumers.delete(data.dataConsumerId);
		} else if (method === 'newPeer') {
			this.peers.set(data.id, data);
		} else if (method === 'peerClosed') {
			this.peers.delete(data.peerId);
		}
		if (this.handlers.onNotification) this.handlers.onNotification(method, data);
	}

	setConsumerPreferredLayers(consumerId, spatialLayer, temporalLayer) {
		const data = { consumerId, spatialLayer };
		if (temporalLayer !== undefined && temporalLayer !== null) data.temporalLayer = temporalLayer;
		return this.request('setConsumerPreferredLayers', data);
	}

	close(reason = 'closed') {
		if (this.closed) return;
		this.closed = true;
		for (const transport of [this.sendTransport, this.recvTransport]) {
			if (transport) transport.close();
		}
		if (this.protoo) this.protoo.close();
		if (this.handlers.onClose) this.handlers.onClose(reason);
	}
}

// getStats() as plain objects (an RTCStatsReport does not survive JSON).
export async function statsList(source) {
	const report = await source.getStats();
	return [...report.values()].map((entry) => ({ ...entry }));
}
