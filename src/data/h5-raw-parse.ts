/**
 * Finds where a float32 dataset's bytes lie in an HDF5 file by parsing the file format (the
 * public "HDF5 File Format Specification") instead of asking the HDF5 library, so reads can go
 * straight from the file into the caller's buffer. It understands only the common case:
 * superblock v0-v3 with 8-byte offsets and lengths, object headers v1/v2 with continuations,
 * groups as a symbol table (v1 B-tree + local heap) or compact link messages, and a
 * little-endian IEEE float32 dataset stored contiguously or in unfiltered chunks indexed by a
 * v1 B-tree. Anything else (dense links, filters, shared or unknown messages, other layouts)
 * yields null so the caller falls back to the library: a wrong answer is never an option.
 */

/** Reads `length` bytes at absolute `offset`; throws when that lies outside the file. */
export type ReadAt = (offset: number, length: number) => Buffer

export interface RawChunk {
  /** Element offsets of the chunk's first element, one per dimension. */
  offset: number[]
  /** Absolute byte address in the file. */
  address: number
}

export interface RawLocation {
  shape: number[]
  /** For a contiguous dataset: the whole shape (one chunk at the origin). */
  chunkShape: number[]
  /** Every chunk, keyed by its offsets joined with ','. */
  chunks: Map<string, RawChunk>
  layout: 'contiguous' | 'chunked'
}

import {checksumOk} from './h5-raw-checksum.js'

const SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a])

/** Thrown for anything the parser does not handle; turned into null at the entry points. */
class Unsupported extends Error {}
function need(ok: boolean, why: string): asserts ok {
  if (!ok) throw new Unsupported(why)
}

/** An 8-byte little-endian address or length as a safe number (undefined address -> -1). */
function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64LE(at)
  if (v === 0xffffffffffffffffn) return -1
  need(v <= BigInt(Number.MAX_SAFE_INTEGER), 'address too large')
  return Number(v)
}

export interface Superblock {
  /** Absolute address that file addresses are relative to. */
  base: number
  rootHeader: number
}

/** The superblock at 0, 512, 1024, ... (after a user block) or null when unsupported. */
export function parseSuperblock(read: ReadAt, fileSize: number): Superblock | null {
  try {
    for (let at = 0; at + 8 <= fileSize; at = at === 0 ? 512 : at * 2) {
      if (!read(at, 8).equals(SIGNATURE)) continue
      const head = read(at, Math.min(96, fileSize - at))
      const version = head[8]
      if (version === 0 || version === 1) {
        need(head[13] === 8 && head[14] === 8, 'offset/length size')
        const p = version === 0 ? 24 : 28
        const base = u64(head, p)
        need(base === at, 'base address')
        // A file shorter than its recorded end is truncated: HDF5 refuses it, so do we.
        need(base + u64(head, p + 16) <= fileSize, 'end of file')
        // Root group symbol table entry after base, free-space, end-of-file and driver addresses.
        const rootHeader = u64(head, p + 32 + 8)
        need(rootHeader >= 0, 'root header')
        return {base, rootHeader}
      }
      if (version === 2 || version === 3) {
        need(head[9] === 8 && head[10] === 8 && checksumOk(head, 44), 'offset/length size or checksum')
        const base = u64(head, 12)
        need(base === at, 'base address')
        need(base + u64(head, 28) <= fileSize, 'end of file')
        const rootHeader = u64(head, 12 + 24)
        need(rootHeader >= 0, 'root header')
        return {base, rootHeader}
      }
      return null
    }
    return null
  } catch {
    return null
  }
}

export interface Message {
  type: number
  flags: number
  data: Buffer
}

/** Every message of the object header at absolute address `at`, following continuations. */
export function readObjectHeader(read: ReadAt, at: number, base: number): Message[] {
  const messages: Message[] = []
  const pending: Array<{at: number; length: number; v2: boolean; first: boolean}> = []
  const first = read(at, 16)
  let headerFlags = 0
  if (first[0] === 1) {
    const size = first.readUInt32LE(8)
    pending.push({at: at + 16, length: size, v2: false, first: true})
  } else {
    need(first.toString('latin1', 0, 4) === 'OHDR' && first[4] === 2, 'object header signature')
    headerFlags = first[5]
    let p = 6
    if (headerFlags & 0x20) p += 16
    if (headerFlags & 0x10) p += 4
    const widthBytes = 1 << (headerFlags & 3)
    const pre = read(at, p + widthBytes)
    let size = 0
    for (let i = 0; i < widthBytes; i++) size += pre[p + i] * 2 ** (8 * i)
    need(checksumOk(read(at, p + widthBytes + size + 4), p + widthBytes + size), 'object header checksum')
    pending.push({at: at + p + widthBytes, length: size, v2: true, first: true})
  }
  let blocks = 0
  while (pending.length > 0) {
    need(++blocks < 1000, 'too many header blocks')
    const block = pending.shift()!
    let buf = read(block.at, block.length)
    if (block.v2 && !block.first) {
      need(buf.toString('latin1', 0, 4) === 'OCHK' && checksumOk(buf, buf.length - 4), 'continuation signature or checksum')
      buf = buf.subarray(4, buf.length - 4)
    }
    let p = 0
    const headLen = block.v2 ? 4 + (headerFlags & 0x04 ? 2 : 0) : 8
    while (p + headLen <= buf.length) {
      let type: number, size: number, flags: number
      if (block.v2) {
        type = buf[p]
        size = buf.readUInt16LE(p + 1)
        flags = buf[p + 3]
      } else {
        type = buf.readUInt16LE(p)
        size = buf.readUInt16LE(p + 2)
        flags = buf[p + 4]
      }
      const start = p + headLen
      need(start + size <= buf.length, 'message past its block')
      const data = buf.subarray(start, start + size)
      p = start + size
      if (type === 0x10) {
        const addr = u64(data, 0)
        const length = u64(data, 8)
        need(addr >= 0 && length > 0, 'continuation')
        pending.push({at: base + addr, length, v2: block.v2, first: false})
      } else if (type !== 0) {
        messages.push({type, flags, data})
      }
    }
  }
  return messages
}

/** Messages this parser may ignore: they do not change where or how the raw data is stored. */
const HARMLESS = new Set([
  0x0002, // link info (checked where it matters)
  0x0004, // old fill value
  0x0005, // fill value (unused: a missing chunk falls back)
  0x000a, // group info
  0x000c, // attribute
  0x000d, // object comment
  0x000e, // old modification time
  0x0012, // modification time
  0x0015, // attribute info
  0x0016, // object reference count
])

/** The children of a group: name -> absolute object header address. null for dense storage. */
export function readGroupLinks(read: ReadAt, messages: Message[], base: number): Map<string, number> | null {
  const links = new Map<string, number>()
  for (const m of messages) {
    if (m.type === 0x0002) {
      // Link info: a defined fractal heap address means dense link storage.
      const flags = m.data[1]
      const p = 2 + (flags & 1 ? 8 : 0)
      if (u64(m.data, p) !== -1) return null
    } else if (m.type === 0x0006) {
      const link = parseLink(m.data)
      if (link) links.set(link.name, base + link.address)
    } else if (m.type === 0x0011) {
      const btree = u64(m.data, 0)
      const heap = u64(m.data, 8)
      need(btree >= 0 && heap >= 0, 'symbol table')
      readSymbolTable(read, base + btree, base + heap, base, links)
    }
  }
  return links
}

function parseLink(d: Buffer): {name: string; address: number} | null {
  need(d[0] === 1, 'link version')
  const flags = d[1]
  let p = 2
  let linkType = 0
  if (flags & 0x08) linkType = d[p++]
  if (flags & 0x04) p += 8
  if (flags & 0x10) p += 1
  const width = 1 << (flags & 3)
  let len = 0
  for (let i = 0; i < width; i++) len += d[p + i] * 2 ** (8 * i)
  p += width
  const name = d.toString('utf8', p, p + len)
  p += len
  // Soft and external links are not followed (the caller falls back if it needs one).
  if (linkType !== 0) return null
  const address = u64(d, p)
  need(address >= 0, 'hard link address')
  return {name, address}
}

function readSymbolTable(read: ReadAt, btree: number, heap: number, base: number, into: Map<string, number>): void {
  const h = read(heap, 32)
  need(h.toString('latin1', 0, 4) === 'HEAP' && h[4] === 0, 'local heap')
  const heapSize = u64(h, 8)
  const heapData = u64(h, 24)
  need(heapSize >= 0 && heapData >= 0, 'local heap data')
  const names = read(base + heapData, heapSize)
  const seen = new Set<number>()
  const visit = (node: number, expectLevel: number) => {
    // A real B-tree never shares a node and its levels step down by one: a corrupt one cannot loop.
    need(!seen.has(node), 'B-tree node seen twice')
    seen.add(node)
    const head = read(node, 24)
    need(head.toString('latin1', 0, 4) === 'TREE' && head[4] === 0, 'group B-tree node')
    const level = head[5]
    need(expectLevel < 0 || level === expectLevel, 'B-tree level')
    const used = head.readUInt16LE(6)
    // keys (8 bytes, heap offsets) and children (8 bytes) interleave: key0 child0 key1 ... keyN
    const body = read(node + 24, (2 * used + 1) * 8)
    for (let i = 0; i < used; i++) {
      const child = u64(body, 8 + i * 16)
      need(child >= 0, 'B-tree child')
      if (level > 0) visit(base + child, level - 1)
      else readSymbolNode(read, base + child, names, base, into)
    }
  }
  visit(btree, -1)
}

function readSymbolNode(read: ReadAt, at: number, names: Buffer, base: number, into: Map<string, number>): void {
  const head = read(at, 8)
  need(head.toString('latin1', 0, 4) === 'SNOD' && head[4] === 1, 'symbol table node')
  const count = head.readUInt16LE(6)
  const body = read(at + 8, count * 40)
  for (let i = 0; i < count; i++) {
    const nameOffset = u64(body, i * 40)
    const header = u64(body, i * 40 + 8)
    need(nameOffset >= 0 && nameOffset < names.length && header >= 0, 'symbol entry')
    const end = names.indexOf(0, nameOffset)
    need(end >= 0, 'heap name')
    into.set(names.toString('utf8', nameOffset, end), base + header)
  }
}

/** Where a little-endian float32 dataset's data lies, from its header messages; null otherwise. */
export function parseDatasetMessages(read: ReadAt, messages: Message[], base: number): RawLocation | null {
  let shape: number[] | null = null
  let float32 = false
  let layout: RawLocation | null = null
  for (const m of messages) {
    // A shared message (e.g. a committed datatype) lives elsewhere: not handled.
    if (m.flags & 0x02) return null
    if (m.type === 0x0001) shape = parseDataspace(m.data)
    else if (m.type === 0x0003) float32 = isFloat32LE(m.data)
    else if (m.type === 0x0008) layout = parseLayout(read, m.data, base, shape)
    else if (!HARMLESS.has(m.type)) return null // filters (0x0b), external files (0x07), anything unknown
  }
  if (!shape || !float32 || !layout) return null
  return layout
}

function parseDataspace(d: Buffer): number[] {
  const version = d[0]
  const rank = d[1]
  const flags = d[2]
  need(version === 1 || version === 2, 'dataspace version')
  need(!(flags & 0x02), 'permutation')
  if (version === 2) need(d[3] === 1, 'simple dataspace')
  const p = version === 1 ? 8 : 4
  need(rank >= 1, 'scalar dataspace')
  return Array.from({length: rank}, (_, i) => u64(d, p + 8 * i))
}

function isFloat32LE(d: Buffer): boolean {
  const cls = d[0] & 0x0f
  const bits = d[1] | (d[2] << 8) | (d[3] << 16)
  const size = d.readUInt32LE(4)
  if (cls !== 1 || size !== 4) return false
  // bit 0 and bit 6: byte order (both 0 = little-endian); bits 1-3 padding; 4-5 normalisation; 8-15 sign bit
  if ((bits & 0x4f) !== 0 || ((bits >> 4) & 3) !== 2 || ((bits >> 8) & 0xff) !== 31) return false
  return (
    d.readUInt16LE(8) === 0 && d.readUInt16LE(10) === 32 && d[12] === 23 && d[13] === 8 && d[14] === 0 && d[15] === 23 && d.readUInt32LE(16) === 127
  )
}

function parseLayout(read: ReadAt, d: Buffer, base: number, shape: number[] | null): RawLocation {
  need(shape !== null, 'layout before dataspace')
  const version = d[0]
  const cls = d[1]
  need(version === 3 || (version === 4 && cls === 1), 'layout version')
  if (cls === 1) {
    const address = u64(d, 2)
    const size = u64(d, 10)
    const elements = shape.reduce((a, b) => a * b, 1)
    need(address >= 0 && size === elements * 4, 'contiguous storage')
    return {shape, chunkShape: [...shape], chunks: new Map([[shape.map(() => 0).join(), {offset: shape.map(() => 0), address: base + address}]]), layout: 'contiguous'}
  }
  need(cls === 2, 'layout class')
  const dims = d[2]
  need(dims === shape.length + 1, 'chunk rank')
  const btree = u64(d, 3)
  const chunkShape = Array.from({length: dims - 1}, (_, i) => d.readUInt32LE(11 + 4 * i))
  need(d.readUInt32LE(11 + 4 * (dims - 1)) === 4 && chunkShape.every((n) => n > 0), 'chunk element size')
  const chunks = new Map<string, RawChunk>()
  if (btree >= 0) readChunkIndex(read, base + btree, base, chunkShape, chunks)
  return {shape, chunkShape, chunks, layout: 'chunked'}
}

function readChunkIndex(
  read: ReadAt, node: number, base: number, chunkShape: number[], into: Map<string, RawChunk>,
  expectLevel = -1, seen = new Set<number>(),
): void {
  need(!seen.has(node) && seen.size < 10_000_000, 'chunk B-tree node seen twice')
  seen.add(node)
  const rank = chunkShape.length
  const bytes = chunkShape.reduce((a, b) => a * b, 4)
  const head = read(node, 24)
  need(head.toString('latin1', 0, 4) === 'TREE' && head[4] === 1, 'chunk B-tree node')
  const level = head[5]
  need(expectLevel < 0 || level === expectLevel, 'chunk B-tree level')
  const used = head.readUInt16LE(6)
  const keySize = 8 + 8 * (rank + 1)
  const body = read(node + 24, (used + 1) * keySize + used * 8)
  for (let i = 0; i < used; i++) {
    const k = i * (keySize + 8)
    const child = u64(body, k + keySize)
    need(child >= 0, 'chunk address')
    if (level > 0) {
      readChunkIndex(read, base + child, base, chunkShape, into, level - 1, seen)
      continue
    }
    need(body.readUInt32LE(k) === bytes && body.readUInt32LE(k + 4) === 0, 'chunk size or filter mask')
    const offset = Array.from({length: rank}, (_, j) => u64(body, k + 8 + 8 * j))
    need(offset.every((o, j) => o >= 0 && o % chunkShape[j] === 0), 'chunk offset')
    into.set(offset.join(), {offset, address: base + child})
  }
}

/**
 * Resolves `path` ("tensor", "0000/data") from the root group and returns where its data lies,
 * or null when anything on the way is not handled. `groupCache` (header address -> links)
 * saves re-reading large groups (the per-sample layout has one group per sample).
 */
export function locateDataset(read: ReadAt, fileSize: number, path: string, groupCache = new Map<number, Map<string, number> | null>()): RawLocation | null {
  try {
    const sb = parseSuperblock(read, fileSize)
    if (!sb) return null
    let at = sb.base + sb.rootHeader
    const parts = path.split('/').filter((p) => p.length > 0)
    if (parts.length === 0) return null
    for (const name of parts.slice(0, -1)) {
      const next = groupLinks(read, at, sb.base, groupCache)?.get(name)
      if (next === undefined) return null
      at = next
    }
    const target = groupLinks(read, at, sb.base, groupCache)?.get(parts[parts.length - 1])
    if (target === undefined) return null
    const location = parseDatasetMessages(read, readObjectHeader(read, target, sb.base), sb.base)
    if (!location) return null
    // Every byte it names must lie in the file.
    const chunkBytes = location.chunkShape.reduce((a, b) => a * b, 4)
    for (const c of location.chunks.values()) if (c.address + chunkBytes > fileSize) return null
    return location
  } catch {
    return null
  }
}

function groupLinks(read: ReadAt, at: number, base: number, cache: Map<number, Map<string, number> | null>): Map<string, number> | null {
  if (!cache.has(at)) cache.set(at, readGroupLinks(read, readObjectHeader(read, at, base), base))
  return cache.get(at) ?? null
}
