import assert from 'node:assert/strict'
import {readdir, writeFile, mkdir} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {loadConfig} from '../../../src/config/index.js'
import {
  estimateEvaluation, estimateLatentCache, estimateStage, estimateLine, stepsPerEpochOf, targetStepSeconds, EPOCH_OVERHEAD_S, EVAL_OVERHEAD_S,
  STAGE_OVERHEAD_S, VALIDATION_CAP, type DataShape,
} from '../../../src/pipeline/estimate-math.js'
import {stepModelFor} from '../../../src/pipeline/gpu-calibration.js'
import {resolveTarget} from '../../../src/pipeline/estimate.js'
import {findGpu} from '../../../src/pipeline/gpus.js'
import {flattenMetrics, readEvaluationResults, realPipelineSteps} from '../../../src/pipeline/steps.js'
import {silentLogger} from '../../../src/util/logger.js'
import {tempDir} from '../../helpers.js'
import {TINY_CONFIG} from './fake-steps.js'

const deps = (cwd: string) => ({cwd, env: {}, now: () => new Date('2025-10-16T00:00:00Z'), monotonic: () => performance.now(), logger: silentLogger()})

describe('real steps', () => {
  it('checkData generates missing data when data.generate is set, then validates it (quick)', async (t) => {
    const dir = await tempDir(t)
    await writeFile(join(dir, 'c.yaml'), TINY_CONFIG.replace('root: data}', 'root: gen, generate: {samples: 8, nx: 16, nt: 5, seed: 3}}'))
    const {config} = await loadConfig(join(dir, 'c.yaml'))
    const steps = realPipelineSteps(deps(dir))
    const r = await steps.checkData(config, {quick: true})
    assert.equal(r.ok, true, JSON.stringify(r.files))
    assert.deepEqual(r.generated.sort(), ['burgers1d_test', 'burgers1d_train', 'burgers1d_val'])
    assert.deepEqual((await readdir(join(dir, 'gen'))).filter((n) => n.endsWith('.h5')).sort(), ['burgers1d_test.h5', 'burgers1d_train.h5', 'burgers1d_val.h5'])
    const again = await steps.checkData(config, {quick: true})
    assert.deepEqual(again.generated, [], 'idempotent: nothing generated twice')
  })

  it('checkData reports missing data without data.generate as a failure naming the file', async (t) => {
    const dir = await tempDir(t)
    await writeFile(join(dir, 'c.yaml'), TINY_CONFIG)
    await mkdir(join(dir, 'data'))
    const {config} = await loadConfig(join(dir, 'c.yaml'))
    const r = await realPipelineSteps(deps(dir)).checkData(config, {quick: true})
    assert.equal(r.ok, false)
    assert.match(r.files[0].problem ?? '', /exists: no burgers1d_train\.h5/)
  })

  it('reads metrics from results.json (a metrics object, else top-level numbers); torn files are not results', async (t) => {
    const dir = await tempDir(t)
    await writeFile(join(dir, 'results.json'), JSON.stringify({metrics: {nrmse: 0.1, per_step: {'1': 0.05}}, config: {a: 1}}))
    assert.deepEqual((await readEvaluationResults(dir))?.metrics, {nrmse: 0.1, 'per_step.1': 0.05})
    await writeFile(join(dir, 'results.json'), '{"metrics": {"nrm')
    assert.equal(await readEvaluationResults(dir), undefined)
    assert.deepEqual(flattenMetrics({nrmse: 0.2, name: 'x', list: [1]}), {nrmse: 0.2})
  })
})

describe('estimate arithmetic', () => {
  const shape: DataShape = {trainSamples: 100, valSamples: 10, evalSamples: 10, frames: 11, grid: [64], channels: 1, source: 'config'}
  const local = {name: 'local', gpu: null, pricePerHour: 0, priceSource: 'local'}
  const a100 = {name: 'A100', gpu: findGpu('A100')!, pricePerHour: 1.89, priceSource: 'table', model: stepModelFor(findGpu('A100')!, 'webgpu')!}

  it('a GPU step is kernels x per-kernel cost + FLOPs / achieved FLOP/s, whatever the local step took', () => {
    const flops = 2e9
    assert.equal(targetStepSeconds({stage: 'operator', flopsPerStep: flops, kernelsPerStep: 1000}, 0.5, local), 0.5)
    const m = a100.model
    const expected = (1000 * m.perKernelMs + flops / (m.achievedTflops * 1e9)) / 1000
    assert.ok(Math.abs(targetStepSeconds({stage: 'operator', flopsPerStep: flops, kernelsPerStep: 1000}, 0.5, a100) - expected) < 1e-12)
    assert.equal(targetStepSeconds({stage: 'operator', flopsPerStep: flops, kernelsPerStep: 1000}, 5, a100), targetStepSeconds({stage: 'operator', flopsPerStep: flops, kernelsPerStep: 1000}, 0.5, a100))
    assert.throws(() => targetStepSeconds({stage: 'operator', flopsPerStep: flops, kernelsPerStep: null}, 0.5, a100), /no kernel count for operator/)
  })

  it('time per stage = epochs x (steps/epoch x step + validation + epoch overhead) + warm-up + stage overhead', () => {
    const e = estimateStage({stage: 'operator', epochs: 3, batchSize: 8, accumSteps: 1, flopsPerStep: 1e6, localStepMs: 20}, shape, local)
    assert.equal(e.stepsPerEpoch, Math.ceil((100 * 10) / 8))
    const val = Math.ceil((10 * 10) / 8)
    assert.equal(e.validationBatches, val)
    assert.ok(Math.abs(e.seconds - (3 * (125 * 0.02 + (val * 0.02) / 3 + EPOCH_OVERHEAD_S) + STAGE_OVERHEAD_S)) < 1e-9)
    // Measured validation batch and warm-up replace the defaults (local backend).
    const m = estimateStage({stage: 'operator', epochs: 3, batchSize: 8, accumSteps: 1, flopsPerStep: 1e6, localStepMs: 20, localValBatchMs: 4, warmupExtraMs: 500}, shape, local)
    assert.equal(m.warmupSeconds, 0.5)
    assert.ok(Math.abs(m.seconds - (3 * (125 * 0.02 + val * 0.004 + EPOCH_OVERHEAD_S) + 0.5 + STAGE_OVERHEAD_S)) < 1e-9)
    // On a GPU the local warm-up does not carry over.
    assert.equal(estimateStage({stage: 'operator', epochs: 3, batchSize: 8, accumSteps: 1, flopsPerStep: 1e6, localStepMs: 20, warmupExtraMs: 500, kernelsPerStep: 100, forwardKernels: 30}, shape, a100).warmupSeconds, 0)
  })

  it('counts optimizer steps as the loop does: batches of batch_size, grouped by accum_steps; validation by batch_size', () => {
    // 1100 frames: 110 batches of 10 in groups of 4 -> 28 steps.
    assert.equal(stepsPerEpochOf(1100, 10, 4), 28)
    assert.equal(stepsPerEpochOf(1001, 10, 1), 101)
    assert.equal(stepsPerEpochOf(0, 10, 1), 1)
    const ae = estimateStage({stage: 'autoencoder', epochs: 1, batchSize: 10, accumSteps: 2, flopsPerStep: 1e6, localStepMs: 20}, shape, local)
    assert.equal(ae.stepsPerEpoch, Math.ceil((100 * 11) / 20))
    assert.equal(ae.validationBatches, Math.ceil((10 * 11) / 10), 'validation batches are batch_size, not batch x accum')
    const big: DataShape = {...shape, valSamples: 1000}
    assert.equal(estimateStage({stage: 'autoencoder', epochs: 1, batchSize: 16, accumSteps: 1, flopsPerStep: 1e6, localStepMs: 20}, big, local).validationBatches, Math.ceil(VALIDATION_CAP / 16), 'validation is capped as in the loop')
  })

  it('latent cache encodes every frame of every split; evaluation is forward batches x (rollout + 2) + overhead per pass', () => {
    assert.ok(Math.abs(estimateLatentCache(shape, 8, 0.01) - Math.ceil((120 * 11) / 8) * 0.01) < 1e-12)
    assert.ok(Math.abs(estimateEvaluation(0.01, shape, 8, 5, 2) - 2 * (2 * 7 * 0.01 + EVAL_OVERHEAD_S)) < 1e-12)
    assert.equal(estimateEvaluation(0.01, shape, 8, 5, 0), 0)
  })

  it('prints the runbook\'s line and resolves GPUs by any spelling', async () => {
    assert.equal(estimateLine({totalSeconds: 0.42 * 3600, costUsd: 0.79, target: a100}), 'Estimated: 0.42 h, $0.79 on A100 ($1.89/hr), webgpu extrapolated')
    assert.equal((await resolveTarget('rtx 4090', false)).name, 'RTX_4090')
    await assert.rejects(resolveTarget('TPUv9', false), (e: Error & {exitCode?: number}) => e.exitCode === 2 && /Unknown GPU/.test(e.message))
  })

  it('live prices take the cheapest single-GPU offer over every spelling of the GPU', async () => {
    const searched: string[] = []
    const provider = {search: async (req: {filters: {gpu?: string}}) => {
      searched.push(req.filters.gpu!)
      const price = req.filters.gpu === 'A100_SXM4' ? 1.2 : req.filters.gpu === 'A100_PCIE' ? 0.95 : null
      return price === null ? [] : [{id: price === 1.2 ? 1 : 2, gpuName: req.filters.gpu!.replace('_', ' '), numGpus: 1, dphTotal: price, gpuRamGb: 80}]
    }} as unknown as import('../../../src/vast/provider.js').Provider
    const target = await resolveTarget('A100', true, () => provider)
    assert.equal(target.pricePerHour, 0.95)
    assert.match(target.priceSource, /live: cheapest offer #2/)
    assert.ok(searched.includes('A100_SXM4') && searched.includes('A100_PCIE'))
  })
})
