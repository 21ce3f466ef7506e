/**
 * The latent cache: every trajectory of a (task, split) encoded once by the trained autoencoder,
 * in `<latent_cache_dir>/<task>_<split>-<key>/`:
 *   latents.bin  [n, frames, tokens, dim] little-endian float16 or float32
 *   meta.json    {key, config_hash, autoencoder_hash, data, dtype, shape, chunk_bytes, chunk_sha256[], data_sha256}
 * The key hashes everything that makes the cache what it is (config, autoencoder weights, the data
 * files with their sizes and mtimes, max_samples, time stride, dtype, shape), so runs with different
 * caches never share a folder. It is written a chunk at a time and hashed incrementally (sha256 of
 * the whole file and of every CHUNK_BYTES chunk): no buffer ever holds the whole cache. Before use,
 * every chunk is read back and checked against its recorded hash; a mismatch rebuilds the cache
 * (logged), it is never used silently. A cache larger than the memory budget stays on disk and
 * training reads blocks of trajectories from it (readLatentTrajectories); otherwise it is read
 * into memory. Training always reads the stored values back, so a run that built the cache and
 * one that reused it see the same (possibly float16) numbers.
 */
import {createHash, randomBytes} from 'node:crypto'
import {closeSync, fsyncSync, openSync, readSync, writeSync} from 'node:fs'
import {mkdir, readFile, rename, rm, stat} from 'node:fs/promises'
import {join} from 'node:path'

import {canonicalJson} from '../util/hash.js'
import {syncDir} from '../util/fs.js'
import {memoryBudgetBytes, streamsFromDisk, trajectoriesPerBlock} from './blocks.js'
import {readTrajectories, type SplitData} from './data.js'

export type CacheDtype = 'float16' | 'float32'

/** Bytes per hashed chunk of latents.bin. */
const CHUNK_BYTES = 64 * 2 ** 20

export interface CacheMeta {
  version: 2
  key: string
  config_hash: string
  autoencoder_hash: string
  /** What the frames were read from (files, sizes, mtimes, stride, sample count). */
  data: string
  dtype: CacheDtype
  /** [n, frames, tokens, dim] */
  shape: [number, number, number, number]
  chunk_bytes: number
  chunk_sha256: string[]
  data_sha256: string
}

export interface LatentSplit {
  task: string
  split: string
  /** [n, frames, tokens, dim] as float32; empty when the cache is read from disk (`file`). */
  data: Float32Array
  shape: [number, number, number, number]
  /** Set when training reads the cache from disk a block at a time. */
  file?: {path: string; dtype: CacheDtype}
  /** Trajectories per block when streamed. */
  blockTrajectories?: number
}

export interface CacheOptions {
  dir: string
  configHash: string
  autoencoderHash: string
  dtype: CacheDtype
  tokens: number
  dim: number
  /**
   * Encodes `count` normalised frames ([count, ...grid, C] flat) to [count, tokens, dim] flat
   * (asynchronously where the backend only reads that way: webgpu).
   */
  encode: (frames: Float32Array, count: number) => Float32Array | Promise<Float32Array>
  frameSize: number
  /** Frames per encode call. */
  batchFrames?: number
  /** What the split's frames were read from (part of the key); default: task, split, n, frames. */
  dataIdentity?: (s: SplitData) => string
  /** data.memory_budget_mb in bytes: a larger cache is read from disk in blocks (default 2 GiB). */
  memoryBudgetBytes?: number
  log?: (message: string) => void
}

export interface CacheResult {
  latents: Map<SplitData, LatentSplit>
  reused: string[]
  rebuilt: Array<{name: string; reason: string}>
}

export function cacheName(task: string, split: string): string {
  return `${task}_${split}`
}

/** The cache key: everything that makes two caches differ. */
function cacheKey(s: SplitData, o: CacheOptions): {key: string; data: string; shape: CacheMeta['shape']} {
  const shape: CacheMeta['shape'] = [s.n, s.frames, o.tokens, o.dim]
  const data = o.dataIdentity?.(s) ?? `${s.task}/${s.split}/n=${s.n}/frames=${s.frames}`
  const key = createHash('sha256').update(canonicalJson({config: o.configHash, autoencoder: o.autoencoderHash, data, dtype: o.dtype, shape})).digest('hex')
  return {key, data, shape}
}

/** Reuses or (re)builds the cache of every split, in order. */
export async function ensureLatentCache(splits: SplitData[], o: CacheOptions): Promise<CacheResult> {
  const result: CacheResult = {latents: new Map(), reused: [], rebuilt: []}
  for (const s of splits) {
    const base = cacheName(s.task, s.split)
    const {key, data, shape} = cacheKey(s, o)
    const name = `${base}-${key.slice(0, 16)}`
    const folder = join(o.dir, name)
    const existing = await readMeta(folder)
    let why = existing ? mismatch(existing, o, shape, key) : 'no cache yet'
    if (why === null) why = verifyCache(folder, existing!)
    if (why === null) {
      result.reused.push(base)
      result.latents.set(s, loadLatents(s, folder, shape, o))
      o.log?.(`Latent cache ${folder}: reused (${existing!.chunk_sha256.length} chunk hash(es) verified)${streamNote(result.latents.get(s)!)}`)
      continue
    }
    o.log?.(`Latent cache ${folder}: building (${why})`)
    await writeCache(s, o, {dir: o.dir, name, key, data, shape})
    result.rebuilt.push({name: base, reason: why})
    const back = await readMeta(folder)
    const bad = back ? verifyCache(folder, back) : 'meta.json missing'
    if (bad !== null) throw new Error(`latent cache ${folder} does not verify right after writing: ${bad}`)
    result.latents.set(s, loadLatents(s, folder, shape, o))
    const note = streamNote(result.latents.get(s)!)
    if (note) o.log?.(`Latent cache ${folder}: built${note}`)
  }
  return result
}

const streamNote = (l: LatentSplit): string => (l.file ? `; larger than data.memory_budget_mb: read from disk in blocks of ${l.blockTrajectories} trajectories` : '')

function mismatch(meta: CacheMeta, o: CacheOptions, shape: CacheMeta['shape'], key: string): string | null {
  if (meta.version !== 2) return `format version ${meta.version}`
  if (meta.config_hash !== o.configHash) return `config hash ${meta.config_hash} != ${o.configHash}`
  if (meta.autoencoder_hash !== o.autoencoderHash) return 'the autoencoder weights changed'
  if (meta.dtype !== o.dtype) return `dtype ${meta.dtype} != ${o.dtype}`
  if (meta.shape?.join() !== shape.join()) return `shape [${meta.shape}] != [${shape}]`
  if (meta.key !== key) return 'the cache key differs (data files, max_samples or time stride)'
  return null
}

async function readMeta(folder: string): Promise<CacheMeta | null> {
  try {
    return JSON.parse(await readFile(join(folder, 'meta.json'), 'utf8')) as CacheMeta
  } catch {
    return null
  }
}

/** Reads latents.bin a chunk at a time and checks every chunk's hash; null when all match. */
function verifyCache(folder: string, meta: CacheMeta): string | null {
  const expected = meta.shape.reduce((a, b) => a * b, 1) * (meta.dtype === 'float16' ? 2 : 4)
  let fd: number
  try {
    fd = openSync(join(folder, 'latents.bin'), 'r')
  } catch {
    return 'latents.bin missing'
  }
  try {
    const buf = Buffer.allocUnsafeSlow(Math.min(meta.chunk_bytes, Math.max(1, expected)))
    const whole = createHash('sha256')
    let pos = 0
    let k = 0
    for (; pos < expected; k++) {
      const len = Math.min(meta.chunk_bytes, expected - pos)
      const got = readSync(fd, buf, 0, len, pos)
      if (got !== len) return `latents.bin is shorter than its shape (${pos + got} of ${expected} bytes)`
      const view = buf.subarray(0, len)
      if (createHash('sha256').update(view).digest('hex') !== meta.chunk_sha256[k]) return `chunk ${k} of latents.bin does not match its recorded sha256`
      whole.update(view)
      pos += len
    }
    if (k !== meta.chunk_sha256.length) return 'latents.bin has a different chunk count than recorded'
    if (readSync(fd, buf, 0, 1, expected) !== 0) return 'latents.bin is longer than its shape'
    if (whole.digest('hex') !== meta.data_sha256) return 'latents.bin does not match its recorded sha256'
    return null
  } finally {
    closeSync(fd)
  }
}

/** Chunk hashes of a byte stream fed in pieces of any size. */
class ChunkHasher {
  readonly chunks: string[] = []
  private readonly whole = createHash('sha256')
  private current = createHash('sha256')
  private filled = 0

  constructor(private readonly chunkBytes: number) {}

  update(bytes: Uint8Array): void {
    this.whole.update(bytes)
    let at = 0
    while (at < bytes.length) {
      const take = Math.min(this.chunkBytes - this.filled, bytes.length - at)
      this.current.update(bytes.subarray(at, at + take))
      this.filled += take
      at += take
      if (this.filled === this.chunkBytes) {
        this.chunks.push(this.current.digest('hex'))
        this.current = createHash('sha256')
        this.filled = 0
      }
    }
  }

  finish(): {chunks: string[]; whole: string} {
    if (this.filled > 0) this.chunks.push(this.current.digest('hex'))
    return {chunks: this.chunks, whole: this.whole.digest('hex')}
  }
}

/** Encodes the split batch by batch straight into latents.bin (temp folder, renamed into place). */
async function writeCache(s: SplitData, o: CacheOptions, at: {dir: string; name: string; key: string; data: string; shape: CacheMeta['shape']}): Promise<void> {
  await mkdir(at.dir, {recursive: true})
  const tag = randomBytes(6).toString('hex')
  const tmp = join(at.dir, `.${at.name}.${tag}.tmp`)
  const old = join(at.dir, `.${at.name}.${tag}.old`)
  const target = join(at.dir, at.name)
  await mkdir(tmp, {recursive: true})
  try {
    // A descriptor kept for block reads of a cache being replaced would read the old file.
    const stale = openFiles.get(join(target, 'latents.bin'))
    if (stale !== undefined) {
      closeSync(stale)
      openFiles.delete(join(target, 'latents.bin'))
    }
    const hasher = new ChunkHasher(CHUNK_BYTES)
    const fd = openSync(join(tmp, 'latents.bin'), 'w', 0o644)
    try {
      let pos = 0
      for await (const z of encodeBatches(s, o)) {
        const bytes = encodeDtype(z, o.dtype)
        hasher.update(bytes)
        for (let w = 0; w < bytes.length; ) w += writeSync(fd, bytes, w, bytes.length - w, pos + w)
        pos += bytes.length
      }
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    const {chunks, whole} = hasher.finish()
    const meta: CacheMeta = {
      version: 2, key: at.key, config_hash: o.configHash, autoencoder_hash: o.autoencoderHash, data: at.data, dtype: o.dtype,
      shape: at.shape, chunk_bytes: CHUNK_BYTES, chunk_sha256: chunks, data_sha256: whole,
    }
    const mfd = openSync(join(tmp, 'meta.json'), 'w', 0o644)
    try {
      writeSync(mfd, JSON.stringify(meta, null, 2) + '\n')
      fsyncSync(mfd)
    } finally {
      closeSync(mfd)
    }
    await syncDir(tmp)
    if (await stat(target).then(() => true, () => false)) await rename(target, old)
    await rename(tmp, target)
    await syncDir(at.dir)
  } catch (error) {
    await rm(tmp, {recursive: true, force: true})
    throw error
  }
  await rm(old, {recursive: true, force: true})
}

/**
 * The latents of every frame in order, `batchFrames` frames per encode call (batches span
 * trajectories, as when the whole split was in memory). Streamed splits are read a block of
 * trajectories at a time.
 */
async function* encodeBatches(s: SplitData, o: CacheOptions): AsyncGenerator<Float32Array> {
  const total = s.n * s.frames
  const batch = o.batchFrames ?? 256
  const perTraj = s.frames * o.frameSize
  const blockTraj = Math.max(1, Math.floor(Math.min(o.memoryBudgetBytes ?? memoryBudgetBytes(null), 2 ** 30) / 4 / (perTraj * 4)))
  let block: {lo: number; hi: number; data: Float32Array} | null = null
  const frames = (a: number, b: number): Float32Array => {
    if (!s.stream) return s.data.subarray(a * o.frameSize, b * o.frameSize)
    const out = new Float32Array((b - a) * o.frameSize)
    for (let f = a; f < b; f++) {
      const t = Math.floor(f / s.frames)
      if (!block || t < block.lo || t >= block.hi) {
        const hi = Math.min(s.n, t + blockTraj)
        block = {lo: t, hi, data: readTrajectories(s, t, hi)}
      }
      const start = (t - block.lo) * perTraj + (f % s.frames) * o.frameSize
      out.set(block.data.subarray(start, start + o.frameSize), (f - a) * o.frameSize)
    }
    return out
  }
  for (let a = 0; a < total; a += batch) {
    const b = Math.min(total, a + batch)
    yield await o.encode(frames(a, b), b - a)
  }
}

/** The split's latents: read into memory when they fit the budget, else left on disk for block reads. */
function loadLatents(s: SplitData, folder: string, shape: CacheMeta['shape'], o: CacheOptions): LatentSplit {
  const path = join(folder, 'latents.bin')
  const floats = shape.reduce((a, b) => a * b, 1)
  const budget = o.memoryBudgetBytes ?? memoryBudgetBytes(null)
  const perTraj = shape[1] * shape[2] * shape[3]
  if (!streamsFromDisk([floats * 4], budget)) {
    const fd = openSync(path, 'r')
    try {
      return {task: s.task, split: s.split, shape, data: readLatentRange(fd, path, o.dtype, 0, floats)}
    } finally {
      closeSync(fd)
    }
  }
  const blockTrajectories = trajectoriesPerBlock(perTraj * 4, budget, `the latent cache (${shape[1]} frames x ${shape[2]} tokens x ${shape[3]} dims)`)
  return {task: s.task, split: s.split, shape, data: new Float32Array(0), file: {path, dtype: o.dtype}, blockTrajectories}
}

/** Open latents.bin files of this thread, by path. */
const openFiles = new Map<string, number>()

/** Closes the latents.bin files this thread opened for block reads. */
export function closeLatentFiles(): void {
  for (const fd of openFiles.values()) closeSync(fd)
  openFiles.clear()
}

/** Values [start, start + count) of a latents.bin as float32, read a chunk at a time. */
function readLatentRange(fd: number, path: string, dtype: CacheDtype, start: number, count: number): Float32Array {
  const bytesPer = dtype === 'float16' ? 2 : 4
  const out = new Float32Array(count)
  const per = Math.floor(CHUNK_BYTES / bytesPer)
  const buf = Buffer.allocUnsafeSlow(Math.min(count, per) * bytesPer)
  for (let at = 0; at < count; at += per) {
    const n = Math.min(per, count - at)
    const got = readSync(fd, buf, 0, n * bytesPer, (start + at) * bytesPer)
    if (got !== n * bytesPer) throw new Error(`latent cache ${path} is shorter than expected`)
    out.set(decode(buf.subarray(0, n * bytesPer), dtype), at)
  }
  return out
}

/** Trajectories [lo, hi) of a latent split: from memory, or read from its latents.bin. */
export function readLatentTrajectories(l: LatentSplit, lo: number, hi: number): Float32Array {
  const per = l.shape[1] * l.shape[2] * l.shape[3]
  if (!l.file || l.data.length > 0) return l.data.subarray(lo * per, hi * per)
  // The descriptor stays open: a rebuilt folder (new key) never reuses a path, and a replaced
  // file keeps the verified contents readable through it.
  let fd = openFiles.get(l.file.path)
  if (fd === undefined) {
    fd = openSync(l.file.path, 'r')
    openFiles.set(l.file.path, fd)
  }
  return readLatentRange(fd, l.file.path, l.file.dtype, lo * per, (hi - lo) * per)
}

function encodeDtype(values: Float32Array, dtype: CacheDtype): Uint8Array {
  if (dtype === 'float32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
  const h = new Uint16Array(values.length)
  for (let i = 0; i < values.length; i++) h[i] = toHalf(values[i])
  return new Uint8Array(h.buffer)
}

function decode(bytes: Uint8Array, dtype: CacheDtype): Float32Array {
  const copy = bytes.slice()
  if (dtype === 'float32') return new Float32Array(copy.buffer, 0, copy.byteLength / 4)
  const h = new Uint16Array(copy.buffer, 0, copy.byteLength / 2)
  const out = new Float32Array(h.length)
  for (let i = 0; i < h.length; i++) out[i] = fromHalf(h[i])
  return out
}

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** IEEE 754 binary16 from a float32, rounding to nearest even (Node 20 has no Float16Array). */
export function toHalf(value: number): number {
  f32[0] = value
  const x = u32[0]
  const sign = (x >>> 16) & 0x8000
  const exp = (x >>> 23) & 0xff
  let mant = x & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0)
  const e = exp - 127 + 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign
    mant |= 0x800000
    const shift = 14 - e
    let half = mant >>> shift
    const rem = mant & ((1 << shift) - 1)
    const mid = 1 << (shift - 1)
    if (rem > mid || (rem === mid && (half & 1))) half += 1
    return sign | half
  }
  let half = (e << 10) | (mant >>> 13)
  const rem = mant & 0x1fff
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half += 1
  return sign | half
}

export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >>> 10) & 0x1f
  const mant = h & 0x3ff
  if (exp === 0) return sign * mant * 2 ** -24
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY
  return sign * (1 + mant / 1024) * 2 ** (exp - 15)
}
