import assert from 'node:assert/strict'
import {readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {latentCacheConfigHash, type UpsConfig} from '../../../src/config/index.js'
import {type CacheOptions, ensureLatentCache, fromHalf, toHalf} from '../../../src/training/cache.js'
import type {SplitData} from '../../../src/training/data.js'
import {tempDir} from '../../helpers.js'

const base = {data: {task: 'burgers1d'}, latent: {dim: 4, tokens: 2}, operator: {pdet: {hidden_dim: 8, depths: [1], group_size: 4, num_heads: 2}}} as UpsConfig

function split(name: string, n: number): SplitData {
  const frames = 3
  return {task: 'burgers1d', split: name, n, frames, data: Float32Array.from({length: n * frames * 8}, (_, i) => Math.sin(i) * 3)}
}

/** A stand-in encoder: the first 8 values of each frame, scaled, so latents are easy to check. */
function options(dir: string, over: Partial<CacheOptions> = {}): CacheOptions & {calls: number} {
  const o = {
    dir, configHash: latentCacheConfigHash(base), autoencoderHash: 'a'.repeat(64), dtype: 'float32' as const, tokens: 2, dim: 4, frameSize: 8, calls: 0,
    encode(frames: Float32Array, count: number) {
      o.calls += count
      return Float32Array.from(frames.subarray(0, count * 8), (v) => v / 3 + 0.1234567)
    },
    ...over,
  }
  return o
}

describe('latent cache', () => {
  it('builds once, reuses when config, autoencoder and shape match, rebuilds when they do not', async (t) => {
    const dir = await tempDir(t)
    const splits = [split('train', 4), split('val', 2)]
    const first = options(dir)
    const r1 = await ensureLatentCache(splits, first)
    assert.deepEqual(r1.rebuilt.map((r) => r.name), ['burgers1d_train', 'burgers1d_val'])
    assert.equal(first.calls, 18)
    const meta = JSON.parse(await readFile(join(dir, 'burgers1d_train', 'meta.json'), 'utf8'))
    assert.equal(meta.config_hash, latentCacheConfigHash(base))
    assert.equal(meta.autoencoder_hash, 'a'.repeat(64))
    assert.deepEqual(meta.shape, [4, 3, 2, 4])
    assert.equal(meta.dtype, 'float32')
    const latents = r1.latents.get(splits[0])!
    assert.equal(latents.data[5], Math.fround(Math.fround(splits[0].data[5]) / 3 + 0.1234567))

    const again = options(dir)
    const r2 = await ensureLatentCache(splits, again)
    assert.deepEqual(r2.reused, ['burgers1d_train', 'burgers1d_val'])
    assert.equal(again.calls, 0, 'nothing re-encoded')
    assert.deepEqual(Array.from(r2.latents.get(splits[0])!.data), Array.from(latents.data))

    // latent.dim changes the config hash: rebuilt.
    const wider = {...base, latent: {dim: 8, tokens: 2}} as UpsConfig
    assert.notEqual(latentCacheConfigHash(wider), latentCacheConfigHash(base))
    const r3 = await ensureLatentCache(splits, options(dir, {configHash: latentCacheConfigHash(wider)}))
    assert.equal(r3.rebuilt.length, 2)
    assert.match(r3.rebuilt[0].reason, /config hash/)
    // New autoencoder weights: rebuilt.
    const r4 = await ensureLatentCache(splits, options(dir, {configHash: latentCacheConfigHash(wider), autoencoderHash: 'b'.repeat(64)}))
    assert.match(r4.rebuilt[0].reason, /autoencoder/)
    // More samples (data.max_samples raised): rebuilt for the shape.
    const r5 = await ensureLatentCache([split('train', 5)], options(dir, {configHash: latentCacheConfigHash(wider), autoencoderHash: 'b'.repeat(64)}))
    assert.match(r5.rebuilt[0].reason, /shape/)
    // A damaged latents.bin fails its hash: rebuilt, not trusted.
    await writeFile(join(dir, 'burgers1d_val', 'latents.bin'), Buffer.alloc(64))
    const r6 = await ensureLatentCache([splits[1]], options(dir, {configHash: latentCacheConfigHash(wider), autoencoderHash: 'b'.repeat(64)}))
    assert.equal(r6.rebuilt.length, 1)
  })

  it('float16 storage halves the file and training reads the rounded values back', async (t) => {
    const dir = await tempDir(t)
    const s = split('train', 4)
    const r32 = await ensureLatentCache([s], options(join(dir, 'a')))
    const r16 = await ensureLatentCache([s], options(join(dir, 'b'), {dtype: 'float16'}))
    const size = async (d: string) => (await stat(join(d, 'burgers1d_train', 'latents.bin'))).size
    assert.equal(await size(join(dir, 'b')), (await size(join(dir, 'a'))) / 2)
    const full = r32.latents.get(s)!.data
    const half = r16.latents.get(s)!.data
    assert.notDeepEqual(Array.from(half), Array.from(full))
    full.forEach((v, i) => assert.equal(half[i], fromHalf(toHalf(v))))
  })

  it('converts float16 like IEEE 754 binary16', () => {
    assert.equal(toHalf(1), 0x3c00)
    assert.equal(toHalf(-2), 0xc000)
    assert.equal(toHalf(65504), 0x7bff)
    assert.equal(toHalf(1e6), 0x7c00)
    assert.equal(toHalf(2 ** -24), 0x0001)
    assert.equal(fromHalf(0x3555), 0.333251953125)
    assert.equal(fromHalf(toHalf(0.1)), 0.0999755859375)
    assert.ok(Number.isNaN(fromHalf(toHalf(Number.NaN))))
  })
})
