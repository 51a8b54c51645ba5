use super::*;

/// A packet: first byte, then the remaining length and `body`.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut n = body.len();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn s(v: &str) -> Vec<u8> {
    let mut out = (v.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(v.as_bytes());
    out
}

fn connect(level: u8, client_id: &str) -> Vec<u8> {
    let mut body = s("MQTT");
    body.extend_from_slice(&[level, 0x02, 0, 60]);
    if level == 5 {
        body.push(0);
    }
    body.extend(s(client_id));
    packet(0x10, &body)
}

fn publish_v5(qos: u8, topic: &str, id: u16, props: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut body = s(topic);
    if qos > 0 {
        body.extend_from_slice(&id.to_be_bytes());
    }
    body.push(props.len() as u8);
    body.extend_from_slice(props);
    body.extend_from_slice(payload);
    packet(0x30 | (qos << 1), &body)
}

fn frames(framer: &mut Framer, segs: &[Segment<'_>], version: Version) -> Vec<Result<String, String>> {
    let mut out = Vec::new();
    for seg in segs {
        framer.feed(*seg, &mut |r| {
            out.push(match r {
                Ok(f) => match decode(&f.header, f.body, version) {
                    Ok(p) => Ok(format!("{p:?}")),
                    Err(e) => Err(format!("{e:?}")),
                },
                Err(e) => Err(format!("{e:?}")),
            })
        });
    }
    out
}

fn decode_all(bytes: &[u8], version: Version) -> Packet<'_> {
    let Header::Complete(h) = fixed_header(bytes) else { panic!("no header") };
    decode(&h, &bytes[h.len..], version).unwrap()
}

#[test]
fn recognises_connect_strictly() {
    assert_eq!(looks_like_connect(&connect(4, "c1")), Some(true));
    assert_eq!(looks_like_connect(&connect(5, "c1")), Some(true));
    assert_eq!(looks_like_connect(&connect(4, "c1")[..5]), None);
    assert_eq!(looks_like_connect(&connect(6, "c1")), Some(false));
    assert_eq!(looks_like_connect(b"GET / HTTP/1.1\r\n"), Some(false));
    assert_eq!(looks_like_connect(b"\x10\x0c\x00\x04HTTP\x04\x02\x00\x3c"), Some(false));
    assert_eq!(looks_like_connect(b"\x10"), None);
    assert_eq!(looks_like_connect(b""), None);
    let mut v31 = s("MQIsdp");
    v31.extend_from_slice(&[3, 2, 0, 60]);
    v31.extend(s("old"));
    assert_eq!(looks_like_connect(&packet(0x10, &v31)), Some(true));
    // Reserved connect flag bit set.
    let mut bad = connect(4, "c1");
    bad[9] |= 1;
    assert_eq!(looks_like_connect(&bad), Some(false));
}

#[test]
fn decodes_connect_and_connack() {
    let bytes = connect(5, "sensor-1");
    let p = decode_all(&bytes, Version::V3_1_1);
    assert_eq!(
        p,
        Packet::Connect(Connect { version: Version::V5, client_id: "sensor-1", clean_start: true, keep_alive: 60 })
    );
    assert_eq!(
        decode_all(&[0x20, 2, 1, 5], Version::V3_1_1),
        Packet::Connack(Connack { session_present: true, reason: 5, assigned_client_id: None })
    );
    // The client id beyond the capture: the version is still known.
    let Header::Complete(h) = fixed_header(&bytes) else { panic!() };
    let Packet::Connect(c) = decode(&h, &bytes[h.len..bytes.len() - 3], Version::V3_1_1).unwrap() else { panic!() };
    assert_eq!((c.version, c.client_id), (Version::V5, ""));
    let mut props = vec![0x12];
    props.extend(s("auto-1"));
    let mut body = vec![0, 0, props.len() as u8];
    body.extend(props);
    assert_eq!(
        decode_all(&packet(0x20, &body), Version::V5),
        Packet::Connack(Connack { session_present: false, reason: 0, assigned_client_id: Some("auto-1") })
    );
}

#[test]
fn decodes_publish_of_each_qos() {
    let mut body = s("a/b");
    body.extend_from_slice(b"hello");
    let bytes = packet(0x31, &body);
    let p = decode_all(&bytes, Version::V3_1_1);
    let Packet::Publish(p) = p else { panic!() };
    assert_eq!((p.qos, p.retain, p.dup, p.topic, p.packet_id, p.payload_len), (0, true, false, "a/b", None, 5));
    let mut body = s("a/b");
    body.extend_from_slice(&[0, 7]);
    body.extend_from_slice(b"xy");
    let bytes1 = packet(0x3c, &body);
    let Packet::Publish(p) = decode_all(&bytes1, Version::V3_1_1) else { panic!() };
    assert_eq!((p.qos, p.dup, p.packet_id, p.payload_len), (2, true, Some(7), 2));
    assert_eq!(fixed_header(&[0x36, 0]), Header::Malformed(Malformed::BadQos));
}

#[test]
fn reads_traceparent_and_topic_alias_of_mqtt5() {
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut props = vec![0x23, 0, 3, 0x26];
    props.extend(s("other"));
    props.extend(s("x"));
    props.push(0x26);
    props.extend(s("traceparent"));
    props.extend(s(tp));
    let bytes = publish_v5(1, "t", 9, &props, b"payload");
    let Packet::Publish(p) = decode_all(&bytes, Version::V5) else { panic!() };
    assert_eq!(p.traceparent, Some(tp));
    assert_eq!(p.topic_alias, Some(3));
    assert_eq!(p.payload_len, 7);
    assert_eq!(p.packet_id, Some(9));
    // Properties partly beyond the capture: topic, id and payload size stay known.
    let Header::Complete(h) = fixed_header(&bytes) else { panic!() };
    let cut = &bytes[h.len..h.len + 12];
    let Packet::Publish(p) = decode(&h, cut, Version::V5).unwrap() else { panic!() };
    assert_eq!((p.topic, p.packet_id, p.traceparent, p.payload_len), ("t", Some(9), None, 7));
    // Cut inside the topic: nothing to say.
    assert_eq!(decode(&h, &bytes[h.len..h.len + 2], Version::V5), Err(DecodeError::Truncated));
}

#[test]
fn decodes_acks_with_and_without_reason_codes() {
    assert_eq!(
        decode_all(&[0x40, 2, 0, 5], Version::V3_1_1),
        Packet::Ack(PacketType::Puback, Ack { packet_id: 5, reason: 0 })
    );
    assert_eq!(
        decode_all(&[0x50, 3, 0, 5, 0x87], Version::V5),
        Packet::Ack(PacketType::Pubrec, Ack { packet_id: 5, reason: 0x87 })
    );
    assert_eq!(
        decode_all(&[0x62, 4, 0, 5, 0, 0], Version::V5),
        Packet::Ack(PacketType::Pubrel, Ack { packet_id: 5, reason: 0 })
    );
    // 3.1.1 acks are exactly two bytes.
    let h = FixedHeader { kind: PacketType::Pubcomp, flags: 0, remaining: 3, len: 2 };
    assert_eq!(
        decode(&h, &[0, 5, 0], Version::V3_1_1),
        Err(DecodeError::Malformed(Malformed::Long(PacketType::Pubcomp)))
    );
    assert_eq!(fixed_header(&[0x60, 2]), Header::Malformed(Malformed::BadFlags { kind: PacketType::Pubrel, flags: 0 }));
}

#[test]
fn decodes_subscriptions() {
    let mut body = vec![0, 11];
    body.extend(s("sensors/#"));
    body.push(1);
    body.extend(s("x/+/y"));
    body.push(2);
    let bytes2 = packet(0x82, &body);
    let Packet::Subscribe(sub) = decode_all(&bytes2, Version::V3_1_1) else { panic!() };
    assert_eq!((sub.packet_id, sub.first_filter, sub.filters, sub.max_qos), (11, "sensors/#", 2, 2));
    assert_eq!(
        decode_all(&[0x90, 4, 0, 11, 1, 0x80], Version::V3_1_1),
        Packet::SubAck(
            PacketType::Suback,
            SubAck { packet_id: 11, reasons: 2, first_failure: Some(0x80), max_granted_qos: 1 }
        )
    );
    let mut body = vec![0, 12];
    body.extend(s("sensors/#"));
    let bytes3 = packet(0xa2, &body);
    let Packet::Unsubscribe(u) = decode_all(&bytes3, Version::V3_1_1) else { panic!() };
    assert_eq!((u.packet_id, u.first_filter, u.filters), (12, "sensors/#", 1));
    assert_eq!(
        decode_all(&[0xb0, 2, 0, 12], Version::V3_1_1),
        Packet::SubAck(
            PacketType::Unsuback,
            SubAck { packet_id: 12, reasons: 0, first_failure: None, max_granted_qos: 0 }
        )
    );
    let h = FixedHeader { kind: PacketType::Subscribe, flags: 2, remaining: 2, len: 2 };
    assert_eq!(
        decode(&h, &[0, 1], Version::V3_1_1),
        Err(DecodeError::Malformed(Malformed::NoFilters(PacketType::Subscribe)))
    );
}

#[test]
fn decodes_pings_disconnect_and_auth() {
    assert_eq!(decode_all(&[0xc0, 0], Version::V3_1_1), Packet::Pingreq);
    assert_eq!(decode_all(&[0xd0, 0], Version::V3_1_1), Packet::Pingresp);
    assert_eq!(decode_all(&[0xe0, 0], Version::V3_1_1), Packet::Disconnect { reason: 0 });
    assert_eq!(decode_all(&[0xe0, 1, 0x8e], Version::V5), Packet::Disconnect { reason: 0x8e });
    assert_eq!(decode_all(&[0xf0, 1, 0x18], Version::V5), Packet::Auth { reason: 0x18 });
    let h = FixedHeader { kind: PacketType::Auth, flags: 0, remaining: 0, len: 2 };
    assert_eq!(decode(&h, &[], Version::V3_1_1), Err(DecodeError::Malformed(Malformed::AuthBeforeV5)));
    assert_eq!(fixed_header(&[0x00, 0]), Header::Malformed(Malformed::ReservedType));
    assert_eq!(fixed_header(&[0x30, 0xff, 0xff, 0xff, 0xff]), Header::Malformed(Malformed::BadLength));
    assert_eq!(fixed_header(&[0x30, 0xff, 0xff]), Header::Incomplete);
}

#[test]
fn frames_packets_split_and_batched() {
    let mut stream = connect(4, "c");
    stream.extend(packet(0x32, &[0, 1, b'a', 0, 1, b'x', b'y']));
    stream.extend([0xc0, 0]);
    // Whole, then one byte at a time: same packets.
    let whole = frames(&mut Framer::new(64), &[Segment::Bytes(&stream)], Version::V3_1_1);
    assert_eq!(whole.len(), 3);
    assert!(whole.iter().all(Result::is_ok), "{whole:?}");
    let mut f = Framer::new(64);
    let segs: Vec<Segment<'_>> = stream.chunks(1).map(Segment::Bytes).collect();
    assert_eq!(frames(&mut f, &segs, Version::V3_1_1), whole);
}

#[test]
fn keeps_a_bounded_prefix_and_counts_the_payload() {
    let mut body = s("big");
    body.extend(vec![7u8; 100_000]);
    let bytes = packet(0x30, &body);
    let mut f = Framer::new(16);
    let mut seen = Vec::new();
    for chunk in bytes.chunks(4096) {
        f.feed(Segment::Bytes(chunk), &mut |r| {
            let fr = r.unwrap();
            let Packet::Publish(p) = decode(&fr.header, fr.body, Version::V3_1_1).unwrap() else { panic!() };
            seen.push((fr.body.len(), p.topic.to_string(), p.payload_len));
        });
    }
    assert_eq!(seen, vec![(16, "big".to_string(), 100_000)]);
}

#[test]
fn survives_gaps_inside_a_packet_and_fails_on_gaps_across_one() {
    let mut body = s("t");
    body.extend(vec![1u8; 10_000]);
    let mut bytes = packet(0x30, &body);
    bytes.extend([0xc0, 0]);
    // 4096 captured, 5000 missed inside the payload, the rest captured.
    let segs = [Segment::Bytes(&bytes[..4096]), Segment::Gap(5000), Segment::Bytes(&bytes[9096..])];
    let out = frames(&mut Framer::new(64), &segs, Version::V3_1_1);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out[0].as_ref().unwrap().contains("payload_len: 10000"), "{out:?}");
    assert_eq!(out[1], Ok("Pingreq".to_string()));
    // A gap that covers the next packet's start.
    let mut f = Framer::new(64);
    let segs = [Segment::Bytes(&bytes[..4096]), Segment::Gap(6000)];
    assert_eq!(frames(&mut f, &segs, Version::V3_1_1), vec![Err("LostFraming".to_string())]);
    assert!(f.has_failed());
    assert!(frames(&mut f, &[Segment::Bytes(&[0xc0, 0])], Version::V3_1_1).is_empty());
}

#[test]
fn a_malformed_header_stops_the_framer() {
    let mut f = Framer::new(64);
    let out = frames(&mut f, &[Segment::Bytes(&[0xc0, 0, 0x00, 0x00, 0xc0, 0])], Version::V3_1_1);
    assert_eq!(out, vec![Ok("Pingreq".to_string()), Err("Malformed(ReservedType)".to_string())]);
    assert!(f.has_failed());
}

#[test]
fn decode_never_panics_on_prefixes() {
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut props = vec![0x26];
    props.extend(s("traceparent"));
    props.extend(s(tp));
    let packets = [connect(5, "id"), publish_v5(2, "a/b", 3, &props, b"data"), vec![0x90, 3, 0, 1, 0]];
    for p in &packets {
        let Header::Complete(h) = fixed_header(p) else { panic!() };
        for cut in 0..p.len() - h.len {
            for v in [Version::V3_1_1, Version::V5] {
                let _ = decode(&h, &p[h.len..h.len + cut], v);
            }
        }
    }
}

#[test]
fn recognises_a_connect_read_piecewise() {
    let bytes = connect(4, "c1");
    assert!(is_connect_header_piece(&bytes[..1]));
    assert!(is_connect_header_piece(&bytes[1..2]));
    assert!(is_connect_header_piece(&[0x80, 0x01]));
    assert!(!is_connect_header_piece(&[0, 0, 0, 8]));
    assert!(!is_connect_header_piece(&[0x80]));
    assert!(!is_connect_header_piece(b"GET"));
    assert!(looks_like_connect_body(&bytes[2..]));
    assert!(!looks_like_connect_body(b"\x00\x04HTTP\x04\x02\x00\x3c\x00\x00"));
    let mut f = Framer::new(64);
    f.resume_in_body(FixedHeader { kind: PacketType::Connect, flags: 0, remaining: (bytes.len() - 2) as u32, len: 2 });
    assert!(f.in_packet());
    let out = frames(&mut f, &[Segment::Bytes(&bytes[2..])], Version::V3_1_1);
    assert!(out[0].as_ref().unwrap().contains("client_id: \"c1\""), "{out:?}");
    assert!(!f.in_packet());
}
