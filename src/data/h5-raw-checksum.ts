/**
 * Bob Jenkins' lookup3 `hashlittle`, the checksum HDF5 puts on version 2+ metadata (superblock
 * v2/v3, OHDR and OCHK object header chunks). Verifying it lets the raw path refuse a corrupt
 * header instead of reading from a wrong address.
 */
const rot = (x: number, k: number) => (x << k) | (x >>> (32 - k))

export function lookup3(k: Uint8Array, initval = 0): number {
  let length = k.length
  let a = (0xdeadbeef + length + initval) | 0
  let b = a
  let c = a
  let o = 0
  const word = (p: number) => k[p] | (k[p + 1] << 8) | (k[p + 2] << 16) | (k[p + 3] << 24)
  while (length > 12) {
    a = (a + word(o)) | 0
    b = (b + word(o + 4)) | 0
    c = (c + word(o + 8)) | 0
    a = (a - c) | 0; a ^= rot(c, 4); c = (c + b) | 0
    b = (b - a) | 0; b ^= rot(a, 6); a = (a + c) | 0
    c = (c - b) | 0; c ^= rot(b, 8); b = (b + a) | 0
    a = (a - c) | 0; a ^= rot(c, 16); c = (c + b) | 0
    b = (b - a) | 0; b ^= rot(a, 19); a = (a + c) | 0
    c = (c - b) | 0; c ^= rot(b, 4); b = (b + a) | 0
    length -= 12
    o += 12
  }
  if (length === 0) return c >>> 0
  // The tail: up to 12 bytes, zero-padded, into a, b, c.
  const tail = [0, 0, 0]
  for (let i = 0; i < length; i++) tail[i >> 2] |= k[o + i] << (8 * (i & 3))
  a = (a + tail[0]) | 0
  b = (b + tail[1]) | 0
  c = (c + tail[2]) | 0
  c ^= b; c = (c - rot(b, 14)) | 0
  a ^= c; a = (a - rot(c, 11)) | 0
  b ^= a; b = (b - rot(a, 25)) | 0
  c ^= b; c = (c - rot(b, 16)) | 0
  a ^= c; a = (a - rot(c, 4)) | 0
  b ^= a; b = (b - rot(a, 14)) | 0
  c ^= b; c = (c - rot(b, 24)) | 0
  return c >>> 0
}

/** True when the 4 bytes after `buf[0, length)` hold its lookup3 checksum. */
export function checksumOk(buf: Buffer, length: number): boolean {
  return buf.length >= length + 4 && lookup3(buf.subarray(0, length)) === buf.readUInt32LE(length)
}
