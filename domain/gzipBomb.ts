/**
 * When gzip is a bomb rather than data: inflating to more than `maxInflation` times the compressed
 * bytes read of it, past its first MiB. Partners' files and SDK batches inflate a few times to a few
 * dozen. Applied where gzip is inflated: a stored upload read by its translator
 * (infra/ingest/translateStream.ts) and a body sent with `Content-Encoding: gzip` (api/streaming.ts).
 * (Found by outside attacks: 1 MB inflating to 1 GiB of line breaks took its partner's translator
 * 7.5 minutes of a core; 20 MB sent with `Content-Encoding: gzip` could store 20 GiB.)
 */
export const maxInflation = 200
const inflationGrace = 1024 * 1024

export const inflatesTooMuch = (inflatedBytes: number, compressedBytes: number): boolean =>
  inflatedBytes > inflationGrace && inflatedBytes > maxInflation * compressedBytes
