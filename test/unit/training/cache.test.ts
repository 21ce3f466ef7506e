import assert from 'node:assert/strict'
import {readdir, readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {latentCacheConfigHash, type UpsConfig} from '../../../src/config/index.js'
import {type CacheOptions, closeLatentFiles, ensureLatentCache, fromHalf, readLatentTrajectories, toHalf} from '../../../src/training/cache.js'
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

/** The cache folder of a split (named `<task>_<split>-<key>`). */
async function folderOf(dir: string, name: string): Promise<string> {
  const found = (await readdir(dir)).filter((n) => n.startsWith(`${name}-`) && !n.startsWith('.'))
  assert.equal(found.length, 1, `one cache folder for ${name} in ${found}`)
  return join(dir, found[0])
}

describe('latent cache', () => {
  it('builds once, reuses when config, autoencoder and shape match, rebuilds when they do not', async (t) => {
    const dir = await tempDir(t)
    const splits = [split('train', 4), split('val', 2)]
    const first = options(dir)
    const r1 = await ensureLatentCache(splits, first)
    assert.deepEqual(r1.rebuilt.map((r) => r.name), ['burgers1d_train', 'burgers1d_val'])
    assert.equal(first.calls, 18)
    const meta = JSON.parse(await readFile(join(await folderOf(dir, 'burgers1d_train'), 'meta.json'), 'utf8'))
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
    // Each key gets its own folder: nothing built for the old config is taken.
    assert.equal(r3.rebuilt.length, 2)
    assert.equal((await readdir(dir)).filter((n) => n.startsWith('burgers1d_train-')).length, 2)
    // New autoencoder weights: rebuilt.
    const r4 = await ensureLatentCache(splits, options(dir, {configHash: latentCacheConfigHash(wider), autoencoderHash: 'b'.repeat(64)}))
    assert.equal(r4.rebuilt.length, 2)
    // More samples (data.max_samples raised): rebuilt for the shape.
    const r5 = await ensureLatentCache([split('train', 5)], options(dir, {configHash: latentCacheConfigHash(wider), autoencoderHash: 'b'.repeat(64)}))
    assert.equal(r5.rebuilt.length, 1)
    assert.equal((await readdir(dir)).filter((n) => n.startsWith('burgers1d_train-')).length, 4)
    // A damaged latents.bin fails its hash: rebuilt, not trusted.
    const valDirs = (await readdir(dir)).filter((n) => n.startsWith('burgers1d_val-'))
    for (const v of valDirs) await writeFile(join(dir, v, 'latents.bin'), Buffer.alloc(64))
    const r6 = await ensureLatentCache([splits[1]], options(dir, {configHash: latentCacheConfigHash(wider), autoencoderHash: 'b'.repeat(64)}))
    assert.equal(r6.rebuilt.length, 1)
  })

  it('float16 storage halves the file and training reads the rounded values back', async (t) => {
    const dir = await tempDir(t)
    const s = split('train', 4)
    const r32 = await ensureLatentCache([s], options(join(dir, 'a')))
    const r16 = await ensureLatentCache([s], options(join(dir, 'b'), {dtype: 'float16'}))
    const size = async (d: string) => (await stat(join(await folderOf(d, 'burgers1d_train'), 'latents.bin'))).size
    assert.equal(await size(join(dir, 'b')), (await size(join(dir, 'a'))) / 2)
    const full = r32.latents.get(s)!.data
    const half = r16.latents.get(s)!.data
    assert.notDeepEqual(Array.from(half), Array.from(full))
    full.forEach((v, i) => assert.equal(half[i], fromHalf(toHalf(v))))
  })

  it('rechecks the recorded chunk hashes on every load: a changed byte rebuilds the cache (logged), never used silently', async (t) => {
    const dir = await tempDir(t)
    const s = split('train', 4)
    await ensureLatentCache([s], options(dir))
    const folder = await folderOf(dir, 'burgers1d_train')
    const meta = JSON.parse(await readFile(join(folder, 'meta.json'), 'utf8'))
    assert.equal(meta.version, 2)
    assert.equal(meta.chunk_sha256.length, 1)
    assert.match(meta.data_sha256, /^[0-9a-f]{64}$/)
    // Same size, one value changed (as another run's cache written into this folder would be).
    const bin = await readFile(join(folder, 'latents.bin'))
    bin[5] ^= 0xff
    await writeFile(join(folder, 'latents.bin'), bin)
    const logs: string[] = []
    const again = options(dir, {log: (m) => logs.push(m)})
    const r = await ensureLatentCache([s], again)
    assert.equal(r.rebuilt.length, 1)
    assert.match(r.rebuilt[0].reason, /chunk 0 of latents.bin does not match its recorded sha256/)
    assert.ok(logs.some((l) => /building \(chunk 0/.test(l)), logs.join('\n'))
    assert.equal(again.calls, 12, 're-encoded')
    const fresh = await ensureLatentCache([s], options(dir))
    assert.deepEqual(fresh.reused, ['burgers1d_train'])
  })

  it('keys the folder by what makes the cache unique: another run with other data never takes it', async (t) => {
    const dir = await tempDir(t)
    const s = split('train', 4)
    const a = await ensureLatentCache([s], options(dir, {dataIdentity: () => 'files A'}))
    const b = await ensureLatentCache([s], options(dir, {dataIdentity: () => 'files B'}))
    assert.equal(a.rebuilt.length, 1)
    assert.equal(b.rebuilt.length, 1, 'other data: its own cache, not the first run\'s')
    const folders = (await readdir(dir)).filter((n) => n.startsWith('burgers1d_train-'))
    assert.equal(folders.length, 2)
    // Different autoencoder weights: a third folder; the first run's cache is still reused by it.
    await ensureLatentCache([s], options(dir, {dataIdentity: () => 'files A', autoencoderHash: 'c'.repeat(64)}))
    assert.equal((await readdir(dir)).filter((n) => n.startsWith('burgers1d_train-')).length, 3)
    assert.deepEqual((await ensureLatentCache([s], options(dir, {dataIdentity: () => 'files A'}))).reused, ['burgers1d_train'])
  })

  it('a cache larger than the memory budget stays on disk and reads back the same values by block', async (t) => {
    const dir = await tempDir(t)
    const s = split('train', 6)
    for (const dtype of ['float32', 'float16'] as const) {
      const inMemory = (await ensureLatentCache([s], options(join(dir, dtype), {dtype}))).latents.get(s)!
      assert.equal(inMemory.file, undefined)
      // 96 bytes per trajectory: a 400-byte budget streams it, one trajectory per block.
      const streamed = (await ensureLatentCache([s], options(join(dir, dtype), {dtype, memoryBudgetBytes: 400}))).latents.get(s)!
      assert.equal(streamed.data.length, 0)
      assert.ok(streamed.file)
      assert.equal(streamed.blockTrajectories, 1)
      assert.deepEqual(Array.from(readLatentTrajectories(streamed, 2, 5)), Array.from(inMemory.data.subarray(2 * 24, 5 * 24)))
    }
    closeLatentFiles()
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
