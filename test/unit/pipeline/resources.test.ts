import assert from 'node:assert/strict'
import {test} from 'node:test'

import {configSchema, type UpsConfig} from '../../../src/config/index.js'
import type {DataShape} from '../../../src/pipeline/estimate-math.js'
import {resourceReport} from '../../../src/pipeline/resources.js'

const config = (over: Record<string, unknown> = {}) => configSchema.parse({
  data: {task: 'burgers1d', ...over}, latent: {dim: 32, tokens: 32},
  operator: {pdet: {hidden_dim: 96, depths: [1], group_size: 12, num_heads: 6}},
  training: {latent_cache_dir: '/cache'},
}) as UpsConfig
// The PDEBench Burgers file: 10000 x 201 x 1024 float32 (8.2 GB).
const burgers: DataShape = {trainSamples: 8000, valSamples: 1000, evalSamples: 1000, frames: 201, grid: [1024], channels: 1, source: 'data'}

test('the dry run warns that 8 GB of data streams, that the cache does not fit the disk, and names the knobs', async () => {
  const probed: string[] = []
  const r = await resourceReport(config(), burgers, {
    cwd: '/work', runsRoot: 'artifacts/runs', latentStages: true,
    system: {totalMemBytes: () => 16e9, freeDiskBytes: async (p) => (probed.push(p), p === '/cache' ? 5e9 : 100e9)},
  })
  assert.equal(r.dataBytes, 10000 * 201 * 1024 * 4)
  assert.equal(r.streamed, true)
  assert.equal(r.latentCache?.bytes, 10000 * 201 * 32 * 32 * 4)
  assert.deepEqual(r.disk, [{path: '/cache', freeBytes: 5e9}, {path: '/work/artifacts/runs', freeBytes: 100e9}])
  assert.ok(r.warnings.some((w) => /8\.2 GB in memory, more than data\.memory_budget_mb \(2\.1 GB\): training streams it/.test(w)), r.warnings.join('\n'))
  assert.ok(r.warnings.some((w) => /latent cache needs 8\.2 GB on disk but only 5\.0 GB is free at \/cache.*latent_cache_dtype float16/.test(w)), r.warnings.join('\n'))
})

test('a budget above the machine\'s RAM and a trajectory too large for it are warned about; small data is quiet', async () => {
  const big = await resourceReport(config({memory_budget_mb: 64_000}), burgers, {cwd: '/w', runsRoot: 'runs', latentStages: false, system: {totalMemBytes: () => 8e9, freeDiskBytes: async () => 1e12}})
  assert.ok(big.warnings.some((w) => /more than 80% of this machine's 8\.0 GB RAM: lower data\.memory_budget_mb/.test(w)), big.warnings.join('\n'))
  const tiny = await resourceReport(config({memory_budget_mb: 1}), burgers, {cwd: '/w', runsRoot: 'runs', latentStages: false})
  assert.ok(tiny.warnings.some((w) => /one trajectory .* training will stop\. Raise data\.memory_budget_mb or training\.time_stride/.test(w)), tiny.warnings.join('\n'))
  const small = await resourceReport(config(), {...burgers, trainSamples: 10, valSamples: 2, evalSamples: 2}, {cwd: '/w', runsRoot: 'runs', latentStages: true, system: {totalMemBytes: () => 8e9, freeDiskBytes: async () => 1e12}})
  assert.deepEqual(small.warnings, [])
  assert.equal(small.streamed, false)
})
