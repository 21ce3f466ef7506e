import assert from 'node:assert/strict'
import {readFile, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'

import type {UpsConfig} from '../../../src/config/schema.js'
import {evaluate, type EvalResult} from '../../../src/training/evaluate.js'
import {evalSummary, writeEvalReport} from '../../../src/training/report.js'
import {advectionTrajectories, memoryDataset, shiftSimulator} from '../../fixtures/fake-simulator.js'
import {tempDir} from '../../helpers.js'

const NX = 32
const T = 8
const config = {data: {task: 'advection1d'}, latent: {dim: 4, tokens: 8}, operator: {pdet: {hidden_dim: 8, depths: [1], group_size: 4, num_heads: 1}}} as unknown as UpsConfig
let clock = 0
/** Off by +0.5 normalised (+1 physical) per step: finite, non-zero errors everywhere. */
const offsetSim = () => shiftSimulator({nx: NX, tokens: 8, shift: 1, correctionOffset: 0.5, normStats: {mean: [3], std: [2]}})
const deps = {now: () => (clock += 5)}

function run(overrides: Partial<Parameters<typeof evaluate>[0]> = {}, sim = shiftSimulator({nx: NX, tokens: 8, shift: 1})): Promise<EvalResult> {
  const dataset = memoryDataset(advectionTrajectories(7, T, NX, 1, 11), [7, T, NX, 1])
  const trainDataset = memoryDataset(advectionTrajectories(12, T, NX, 1, 5), [12, T, NX, 1], 'train')
  return evaluate({config, dataset, trainDataset, simulator: sim, split: 'test', rollout: 5, tau: 0.5, useCorrector: true, maxSamples: 5, batchSize: 2, frameBatch: 6, ...overrides}, deps)
}

test('an exact simulator scores ~0 and beats persistence; the linear baseline is exact on advection', async () => {
  const calls = {encode: 0, decode: 0, step: 0, correct: 0}
  const r = await run({}, shiftSimulator({nx: NX, tokens: 8, shift: 1, calls}))
  assert.equal(r.samples, 5)
  assert.equal(r.rolloutSteps, 5)
  assert.equal(r.model.rollout.nrmsePerStep.length, 5)
  assert.ok(r.model.oneStep.nrmse < 1e-6, `model one-step ${r.model.oneStep.nrmse}`)
  assert.ok(r.model.rollout.overall.nrmse < 1e-6)
  assert.ok(r.latent.oneStep.nrmse < 1e-6 && r.reconstruction.nrmse < 1e-6)
  assert.equal(r.model.oneStep.count, 5 * (T - 1))
  // Persistence is wrong by a shift that grows along the rollout.
  const p = r.baselines.persistence
  assert.ok(p.oneStep.nrmse > 0.01)
  assert.ok(p.rollout.nrmsePerStep[4] > p.rollout.nrmsePerStep[0])
  assert.equal(r.ratios.persistence.oneStep, null) // undefined for an exact model (no division by 0)
  assert.ok(!('skipped' in r.baselines.linear))
  if (!('skipped' in r.baselines.linear)) {
    assert.ok(r.baselines.linear.oneStep.nrmse < 1e-4, `linear ${r.baselines.linear.oneStep.nrmse}`)
    assert.equal(r.baselines.linear.pairs, 12 * (T - 1))
  }
  assert.equal(r.corrector.used, false) // this fake has no corrector
  assert.equal(r.examples.length, 3)
  assert.deepEqual(r.examples[0].steps, [1, 3, 5])
  assert.equal(r.examples[0].truth[0].length, NX)
  // Batching: 5 samples in batches of 2 -> 3 batches; frames are chunked by 6.
  assert.ok(calls.encode >= 3 * Math.ceil((2 * T) / 6) - 1)
  assert.equal(r.checkpointHashes.operator, 'b'.repeat(64))
  assert.match(r.configHash, /^[0-9a-f]{16}$/)
})

test('the corrector runs when enabled and only then; errors are in physical units', async () => {
  const sim = offsetSim
  const on = await run({}, sim())
  assert.equal(on.corrector.used, true)
  assert.equal(on.corrector.kind, 'test-offset')
  // +0.5 in normalised units is +1 in physical units (std 2) at every point.
  assert.ok(Math.abs(on.model.oneStep.rmse - 1) < 1e-5, `rmse ${on.model.oneStep.rmse}`)
  assert.ok(Math.abs(on.model.oneStep.crmse - 1) < 1e-5)
  assert.ok(Math.abs(on.latent.oneStep.rmse - 0.5) < 1e-5)
  // The offset accumulates along the rollout: step k is off by k.
  assert.ok(Math.abs(on.model.rollout.rmsePerStep[4] - 5) < 1e-4)
  assert.equal(on.ratios.persistence.oneStep, on.baselines.persistence.oneStep.nrmse / on.model.oneStep.nrmse)
  const off = await run({useCorrector: false}, sim())
  assert.equal(off.corrector.used, false)
  assert.equal(off.corrector.noise, null)
  assert.ok(off.model.oneStep.rmse < 1e-5)
})

test('the corrector samples from the noise mean unless told to draw: the choice reaches it and the result', async () => {
  const seen: string[] = []
  const watched = () => {
    const s = offsetSim()
    const correct = s.correct!
    s.correct = (z, context) => (seen.push(context.noise), correct(z, context))
    return s
  }
  const byDefault = await run({}, watched())
  assert.equal(byDefault.corrector.noise, 'mean')
  assert.deepEqual([...new Set(seen)], ['mean'])
  seen.length = 0
  const drawn = await run({correctorNoise: 'sample'}, watched())
  assert.equal(drawn.corrector.noise, 'sample')
  assert.deepEqual([...new Set(seen)], ['sample'])
})

test('without a training split the linear baseline is skipped, with the reason', async () => {
  const r = await run({trainDataset: null, rollout: 100})
  assert.deepEqual(r.baselines.linear, {skipped: 'no training split given'})
  assert.equal(r.ratios.linear, null)
  assert.equal(r.rolloutSteps, T - 1) // capped by the frames available
})

test('a channel-count mismatch is a clear user error', async () => {
  await assert.rejects(run({}, shiftSimulator({nx: NX, tokens: 8, shift: 1, normStats: {mean: [0, 0], std: [1, 1]}})), /2 channel\(s\); the test data has 1/)
})

test('writes results.json, report.md and SVG + PNG plots with finite numbers', async (t) => {
  const dir = await tempDir(t)
  const r = await run({}, offsetSim())
  const out = join(dir, 'eval', 'test')
  const written = await writeEvalReport(r, out, {finishedAt: new Date('2025-01-02T03:04:05Z'), checkpointsDir: 'run/checkpoints'})
  const results = JSON.parse(await readFile(written.resultsPath, 'utf8'))
  assert.equal(results.split, 'test')
  assert.equal(results.samples, 5)
  assert.equal(results.finished_at, '2025-01-02T03:04:05.000Z')
  assert.equal(results.examples, undefined)
  assert.equal(typeof results.model.oneStep.nrmse, 'number')
  assert.equal(typeof results.baselines.linear.oneStep.frmse.high, 'number')
  assert.ok(results.ratios.persistence.oneStep > 0 && results.ratios.linear.rollout > 0)
  assert.ok(results.checkpointHashes.autoencoder)
  const numbers: number[] = []
  JSON.stringify(results, (_k, v) => (typeof v === 'number' && numbers.push(v), v))
  assert.ok(numbers.length > 100 && numbers.every(Number.isFinite))
  assert.ok(Object.keys(results.summary).every((k) => k.startsWith('eval/')))
  assert.equal(results.summary['eval/one_step/nrmse'], r.model.oneStep.nrmse)
  const md = await readFile(written.reportPath, 'utf8')
  assert.match(md, /\| persistence \|/)
  assert.match(md, /!\[.*\]\(plots\/rollout_error\.png\)/)
  assert.match(md, /nRMSE per rollout step/)
  assert.equal(written.plots.length, 3)
  for (const p of written.plots) {
    const svg = await readFile(p.svg, 'utf8')
    assert.match(svg, /^<svg[\s\S]*<path[\s\S]*<\/svg>$/)
    const png = await readFile(p.png)
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
    const width = png.readUInt32BE(16)
    const height = png.readUInt32BE(20)
    assert.ok(width > 300 && height > 200, `${p.name} is ${width}x${height}`)
    assert.ok((await stat(p.png)).size > 5000)
  }
})

test('the eval summary drops non-finite values', async () => {
  const r = await run({}, offsetSim())
  r.model.oneStep.maxError = Number.NaN
  const s = evalSummary(r)
  assert.equal('eval/one_step/max_error' in s, false)
  assert.equal(typeof s['eval/improvement_vs_persistence/one_step'], 'number')
})
