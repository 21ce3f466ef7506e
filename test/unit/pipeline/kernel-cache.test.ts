import assert from 'node:assert/strict'
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'

import {cachedKernelCount, kernelCachePath, kernelCountKey, trainingCodeFingerprint} from '../../../src/pipeline/kernel-cache.js'
import {tempDir} from '../../helpers.js'

test('kernel counts are computed once per key and kept across calls', async (t) => {
  const path = join(await tempDir(t), 'cache', 'kernel-counts.json')
  let computed = 0
  const count = async () => ({kernelsPerStep: 100 + ++computed})
  const key = kernelCountKey({stage: 'operator', gpuBackend: 'webgpu', config: {latent: {dim: 32}}})
  assert.deepEqual(await cachedKernelCount(path, () => key, count), {kernelsPerStep: 101})
  assert.deepEqual(await cachedKernelCount(path, () => key, count), {kernelsPerStep: 101})
  assert.equal(computed, 1)
  const other = kernelCountKey({stage: 'operator', gpuBackend: 'webgpu', config: {latent: {dim: 64}}})
  assert.notEqual(other, key)
  assert.deepEqual(await cachedKernelCount(path, () => other, count), {kernelsPerStep: 102})
  assert.equal(Object.keys(JSON.parse(await readFile(path, 'utf8'))).length, 2)
})

test('a damaged cache file is recounted, not an error; no path means no cache', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'kernel-counts.json')
  await writeFile(path, '{"torn": ')
  let computed = 0
  const count = async () => ++computed
  assert.equal(await cachedKernelCount(path, () => 'k', count), 1)
  assert.equal(await cachedKernelCount(path, () => 'k', count), 1)
  assert.equal(await cachedKernelCount(undefined, () => 'k', count), 2)
  assert.equal(await cachedKernelCount(undefined, () => 'k', count), 3)
})

test('the key covers the training code, and the file lives under $UPS_HOME', () => {
  assert.match(trainingCodeFingerprint(), /^[0-9a-f]{64}$/)
  assert.equal(kernelCachePath({UPS_HOME: '/x/ups'}, '/home/u'), '/x/ups/cache/kernel-counts.json')
  assert.equal(kernelCachePath({}, '/home/u'), '/home/u/.ups/cache/kernel-counts.json')
})
