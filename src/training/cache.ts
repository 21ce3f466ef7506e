/**
 * The latent cache: every trajectory of a (task, split) encoded once by the trained autoencoder,
 * in `<latent_cache_dir>/<task>_<split>/`:
 *   latents.bin  [n, frames, tokens, dim] little-endian float16 or float32
 *   meta.json    {config_hash, autoencoder_hash, dtype, shape, data_sha256}
 * Written to a temp folder and renamed into place. Reused when meta.json matches the config
 * (latentCacheConfigHash), the autoencoder checkpoint's weights hash, the dtype and the shape, and
 * latents.bin matches its hash; rebuilt otherwise. Training always reads the stored values back,
 * so a run that built the cache and one that reused it see the same (possibly float16) numbers.
 */
import {createHash, randomBytes} from 'node:crypto'
import {mkdir, open, readFile, rename, rm, stat} from 'node:fs/promises'
import {join} from 'node:path'

import {syncDir} from '../util/fs.js'
import type {SplitData} from './data.js'

export type CacheDtype = 'float16' | 'float32'

export interface CacheMeta {
  version: 1
  config_hash: string
  autoencoder_hash: string
  dtype: CacheDtype
  /** [n, frames, tokens, dim] */
  shape: [number, number, number, number]
  data_sha256: string
}

export interface LatentSplit {
  task: string
  split: string
  data: Float32Array
  shape: [number, number, number, number]
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
  log?: (message: string) => void
}

export interface CacheResult {
  latents: Map<SplitData, LatentSplit>
  reused: string[]
  rebuilt: Array<{name: string; reason: string}>
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

export function cacheName(task: string, split: string): string {
  return `${task}_${split}`
}

/** Reuses or (re)builds the cache of every split, in order. */
export async function ensureLatentCache(splits: SplitData[], o: CacheOptions): Promise<CacheResult> {
  const result: CacheResult = {latents: new Map(), reused: [], rebuilt: []}
  for (const s of splits) {
    const name = cacheName(s.task, s.split)
    const folder = join(o.dir, name)
    const shape: CacheMeta['shape'] = [s.n, s.frames, o.tokens, o.dim]
    const existing = await readCache(folder)
    const why = existing ? mismatch(existing.meta, o, shape) : 'no cache yet'
    if (existing && why === null) {
      result.reused.push(name)
      result.latents.set(s, {task: s.task, split: s.split, data: decode(existing.bytes, o.dtype), shape})
      o.log?.(`Latent cache ${folder}: reused`)
      continue
    }
    o.log?.(`Latent cache ${folder}: building (${why})`)
    const values = await encodeAll(s, o)
    const bytes = encodeDtype(values, o.dtype)
    const meta: CacheMeta = {version: 1, config_hash: o.configHash, autoencoder_hash: o.autoencoderHash, dtype: o.dtype, shape, data_sha256: sha256(bytes)}
    await writeCacheFolder(o.dir, name, bytes, meta)
    result.rebuilt.push({name, reason: why ?? 'unknown'})
    const back = await readCache(folder)
    if (!back) throw new Error(`latent cache ${folder} could not be read back after writing`)
    result.latents.set(s, {task: s.task, split: s.split, data: decode(back.bytes, o.dtype), shape})
  }
  return result
}

function mismatch(meta: CacheMeta, o: CacheOptions, shape: CacheMeta['shape']): string | null {
  if (meta.config_hash !== o.configHash) return `config hash ${meta.config_hash} != ${o.configHash}`
  if (meta.autoencoder_hash !== o.autoencoderHash) return 'the autoencoder weights changed'
  if (meta.dtype !== o.dtype) return `dtype ${meta.dtype} != ${o.dtype}`
  if (meta.shape?.join() !== shape.join()) return `shape [${meta.shape}] != [${shape}]`
  return null
}

async function readCache(folder: string): Promise<{meta: CacheMeta; bytes: Uint8Array} | null> {
  try {
    const meta = JSON.parse(await readFile(join(folder, 'meta.json'), 'utf8')) as CacheMeta
    const bytes = new Uint8Array(await readFile(join(folder, 'latents.bin')))
    if (meta.version !== 1 || sha256(bytes) !== meta.data_sha256) return null
    return {meta, bytes}
  } catch {
    return null
  }
}

async function encodeAll(s: SplitData, o: CacheOptions): Promise<Float32Array> {
  const total = s.n * s.frames
  const per = o.tokens * o.dim
  const out = new Float32Array(total * per)
  const batch = o.batchFrames ?? 256
  for (let a = 0; a < total; a += batch) {
    const b = Math.min(total, a + batch)
    const z = await o.encode(s.data.subarray(a * o.frameSize, b * o.frameSize), b - a)
    out.set(z, a * per)
  }
  return out
}

async function writeSynced(path: string, data: Uint8Array | string): Promise<void> {
  const h = await open(path, 'w', 0o644)
  try {
    await h.writeFile(data)
    await h.sync()
  } finally {
    await h.close()
  }
}

async function writeCacheFolder(dir: string, name: string, bytes: Uint8Array, meta: CacheMeta): Promise<void> {
  await mkdir(dir, {recursive: true})
  const tag = randomBytes(6).toString('hex')
  const tmp = join(dir, `.${name}.${tag}.tmp`)
  const old = join(dir, `.${name}.${tag}.old`)
  const target = join(dir, name)
  await mkdir(tmp, {recursive: true})
  try {
    await writeSynced(join(tmp, 'latents.bin'), bytes)
    await writeSynced(join(tmp, 'meta.json'), JSON.stringify(meta, null, 2) + '\n')
    await syncDir(tmp)
    if (await stat(target).then(() => true, () => false)) await rename(target, old)
    await rename(tmp, target)
    await syncDir(dir)
  } catch (error) {
    await rm(tmp, {recursive: true, force: true})
    throw error
  }
  await rm(old, {recursive: true, force: true})
}

function encodeDtype(values: Float32Array, dtype: CacheDtype): Uint8Array {
  if (dtype === 'float32') return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength))
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
