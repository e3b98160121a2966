//! Reflection over the Envoy descriptors: canonical encoding and Envoy's JSON shape.
//!
//! *Canonical encoding.* prost encodes map fields (`typed_per_filter_config`, `Struct.fields`, …) in `HashMap`
//! iteration order, which differs between two processes holding the same config. Content-hashed versions must be
//! equal on every replica and across restarts, so [`canonical_bytes`] re-orders map entries (recursing through
//! nested messages and `Any` payloads). The result is still a valid encoding of the same message.
//!
//! *Envoy JSON.* [`to_json`] renders a resource the way Envoy's admin config dump does: proto3 JSON with the proto
//! field names (`filter_chains`, not `filterChains`), default values omitted, `@type` on every `Any`.
//! [`from_json`] reads that shape back (both field-name spellings are accepted, as Envoy does).

use std::sync::OnceLock;

use prost::Message;
use prost::bytes::Buf;
use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, SerializeOptions};

use crate::any::message_name;
use crate::{Any, Error};

/// Every Envoy message's descriptor (not only the generated subset), so any `@type` can be read and rendered.
static DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy.bin"));
/// The descriptors of the generated types only (the import closure of what pilotfish builds and serves).
static SERVED_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/served.bin"));
const ANY_MESSAGE: &str = "google.protobuf.Any";

/// The descriptors of every message `envoy-types` generates, decoded once on first use.
///
/// Decoded, the full set takes tens of megabytes, more than the rest of a server with a thousand services: a
/// server only pays for it once something needs a type outside [`served_pool`] (a raw resource of another type,
/// Envoy JSON for the debug endpoints or the CLI).
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTOR_SET).expect("the envoy-types descriptor set decodes"))
}

/// The descriptors of the generated types, decoded once on first use.
pub fn served_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(SERVED_DESCRIPTOR_SET).expect("the generated types' descriptors decode"))
}

/// The descriptor of the message a type URL names.
pub fn descriptor(type_url: &str) -> Result<MessageDescriptor, Error> {
    let name = message_name(type_url);
    pool().get_message_by_name(name).ok_or_else(|| Error::UnknownType(name.to_owned()))
}

/// The descriptor for canonical encoding: from [`served_pool`] when the type is one pilotfish generates (its
/// fields then only lead to such types), else from the full [`pool`].
fn canonical_descriptor(type_url: &str) -> Result<MessageDescriptor, Error> {
    let name = message_name(type_url);
    match served_pool().get_message_by_name(name) {
        Some(message) => Ok(message),
        None => descriptor(type_url),
    }
}

/// The canonical encoding of a packed resource: the same bytes for the same content in any process.
pub fn canonical_any(any: &Any) -> Result<Any, Error> {
    Ok(Any { type_url: any.type_url.clone(), value: canonical_bytes(&any.type_url, &any.value)? })
}

/// Re-encodes `bytes` (a message of the type `type_url` names) with map entries in a fixed order.
pub fn canonical_bytes(type_url: &str, bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let message = canonical_descriptor(type_url)?;
    let mut out = Vec::with_capacity(bytes.len());
    canonicalize(&message, bytes, &mut out)
        .map_err(|message| Error::Malformed { type_url: type_url.to_owned(), message })?;
    Ok(out)
}

fn canonicalize(message: &MessageDescriptor, mut bytes: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    if message.full_name() == ANY_MESSAGE {
        return canonicalize_any(bytes, out);
    }
    // Map entries of one field are gathered and written, sorted, where the field first appeared.
    let mut maps: Vec<(u32, usize, Vec<Vec<u8>>)> = Vec::new();
    while bytes.has_remaining() {
        let (number, wire_type) = decode_key(&mut bytes).map_err(|e| e.to_string())?;
        let field = message.get_field(number);
        match wire_type {
            WireType::LengthDelimited => {
                let len = usize::try_from(decode_varint(&mut bytes).map_err(|e| e.to_string())?)
                    .map_err(|_| "length overflows usize".to_owned())?;
                if len > bytes.len() {
                    return Err("buffer underflow".to_owned());
                }
                let (payload, rest) = bytes.split_at(len);
                bytes = rest;
                match field.as_ref().map(|f| (f.is_map(), f.kind())) {
                    Some((is_map, Kind::Message(nested))) => {
                        let mut entry = Vec::with_capacity(payload.len());
                        canonicalize(&nested, payload, &mut entry)?;
                        if is_map {
                            match maps.iter_mut().find(|(n, _, _)| *n == number) {
                                Some((_, _, entries)) => entries.push(entry),
                                None => {
                                    maps.push((number, out.len(), vec![entry]));
                                }
                            }
                        } else {
                            write_length_delimited(number, &entry, out);
                        }
                    }
                    _ => write_length_delimited(number, payload, out),
                }
            }
            WireType::Varint => {
                let value = decode_varint(&mut bytes).map_err(|e| e.to_string())?;
                encode_key(number, wire_type, out);
                encode_varint(value, out);
            }
            WireType::SixtyFourBit => copy_fixed(number, wire_type, 8, &mut bytes, out)?,
            WireType::ThirtyTwoBit => copy_fixed(number, wire_type, 4, &mut bytes, out)?,
            WireType::StartGroup | WireType::EndGroup => {
                return Err("groups are not used by xDS messages".to_owned());
            }
        }
    }
    // Insert from the last position backwards so earlier offsets stay valid.
    for (number, at, mut entries) in maps.into_iter().rev() {
        entries.sort_unstable();
        let mut block = Vec::new();
        for entry in &entries {
            write_length_delimited(number, entry, &mut block);
        }
        out.splice(at..at, block);
    }
    Ok(())
}

fn canonicalize_any(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let any = Any::decode(bytes).map_err(|e| e.to_string())?;
    let value = match canonical_descriptor(&any.type_url).ok() {
        Some(inner) => {
            let mut value = Vec::with_capacity(any.value.len());
            canonicalize(&inner, &any.value, &mut value)?;
            value
        }
        // A type we have no descriptor for is kept as it is: it cannot hold maps we know how to order.
        None => any.value,
    };
    Any { type_url: any.type_url, value }.encode(out).map_err(|e| e.to_string())
}

fn write_length_delimited(number: u32, payload: &[u8], out: &mut Vec<u8>) {
    encode_key(number, WireType::LengthDelimited, out);
    encode_varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

fn copy_fixed(
    number: u32,
    wire_type: WireType,
    width: usize,
    bytes: &mut &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    if bytes.len() < width {
        return Err("buffer underflow".to_owned());
    }
    encode_key(number, wire_type, out);
    out.extend_from_slice(&bytes[..width]);
    bytes.advance(width);
    Ok(())
}

/// Renders a packed resource in Envoy's JSON shape, with `@type` first.
pub fn to_json(any: &Any) -> Result<serde_json::Value, Error> {
    let render_error = |message: String| Error::Render { type_url: any.type_url.clone(), message };
    let message = DynamicMessage::decode(descriptor(&any.type_url)?, any.value.as_slice())
        .map_err(|source| Error::Decode { type_url: any.type_url.clone(), source })?;
    let options = SerializeOptions::new().use_proto_field_name(true).skip_default_fields(true);
    let body = message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| render_error(e.to_string()))?;
    let mut object = serde_json::Map::new();
    object.insert("@type".to_owned(), serde_json::Value::String(any.type_url.clone()));
    match body {
        serde_json::Value::Object(fields) => object.extend(fields),
        other => return Err(render_error(format!("expected an object, got {other}"))),
    }
    Ok(serde_json::Value::Object(object))
}

/// Renders a typed message in Envoy's JSON shape.
pub fn message_to_json<M: Message + prost::Name>(message: &M) -> Result<serde_json::Value, Error> {
    to_json(&crate::any::pack(message))
}

/// Reads a resource in Envoy's JSON shape (an object with `@type`) into a packed, canonically encoded `Any`.
pub fn from_json(value: &serde_json::Value) -> Result<Any, Error> {
    let type_url = value
        .get("@type")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| Error::InvalidJson("missing \"@type\"".to_owned()))?;
    let any_descriptor = descriptor(ANY_MESSAGE)?;
    // Checked first so the error names the type rather than a generic Any failure.
    descriptor(type_url)?;
    let message = DynamicMessage::deserialize(any_descriptor, value)
        .map_err(|e| Error::InvalidJson(format!("{type_url}: {e}")))?;
    let any = Any::decode(message.encode_to_vec().as_slice())
        .map_err(|source| Error::Decode { type_url: ANY_MESSAGE.to_owned(), source })?;
    canonical_any(&any)
}

#[cfg(test)]
mod tests;
