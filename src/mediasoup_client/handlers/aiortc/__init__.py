"""The real engine: aiortc's ORTC objects (ICE, DTLS, SRTP, SCTP) with our own RTP send path."""
