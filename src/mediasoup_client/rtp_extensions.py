"""RTP header-extension URIs the library knows (one place for every engine and test)."""

from __future__ import annotations

URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
URI_RRID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_TRANSPORT_WIDE_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
URI_VIDEO_ORIENTATION = "urn:3gpp:video-orientation"
URI_TOFFSET = "urn:ietf:params:rtp-hdrext:toffset"
