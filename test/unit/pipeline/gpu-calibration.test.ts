import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {type DataShape, estimateStage} from '../../../src/pipeline/estimate-math.js'
import {
  benchGpu, benchPoints, CALIBRATIONS, fitCalibration, type GpuBenchFile, modelStepMs, stepModelFor, targetBackendOf,
} from '../../../src/pipeline/gpu-calibration.js'
import {findGpu} from '../../../src/pipeline/gpus.js'
import {DEFAULT_IMAGE} from '../../../src/vast/launch.js'
import {REPO_ROOT} from '../../helpers.js'

const BENCH_FILE = 'bench/results/gpu.json'
const bench = JSON.parse(readFileSync(join(REPO_ROOT, BENCH_FILE), 'utf8')) as GpuBenchFile
const h200 = findGpu('H200')!
const h100 = findGpu('H100')!

describe('GPU step model, calibrated from the recorded bench results', () => {
  it('the checked-in table is the fit of bench/results/gpu.json (source file and date named)', () => {
    assert.equal(benchGpu(bench)?.name, 'H200')
    const fit = fitCalibration(h200, 'webgpu', benchPoints(bench, 'webgpu'), {file: BENCH_FILE, date: bench.when.slice(0, 10)})
    const table = CALIBRATIONS.find((c) => c.gpu === 'H200' && c.backend === 'webgpu')!
    assert.deepEqual(table.source, {file: BENCH_FILE, date: '2026-11-28'})
    assert.equal(table.fit, fit.fit)
    assert.ok(Math.abs(table.perKernelMs - fit.perKernelMs) < 1e-6, `${table.perKernelMs} vs ${fit.perKernelMs}`)
    assert.ok(Math.abs(table.achievedTflops - fit.achievedTflops) < 1e-6)
    assert.deepEqual(table.points.map((p) => p.kernelsPerStep), fit.points.map((p) => p.kernelsPerStep))
  })

  it('reproduces the recorded H200 webgpu step within 25% from its kernel count and FLOPs', () => {
    const row = bench.rows.find((r) => r.backend === 'webgpu' && r.ok)!
    const model = stepModelFor(h200, 'webgpu')!
    assert.equal(model.status, 'calibrated')
    const ms = modelStepMs(bench.kernelsPerStep!, bench.flopsPerStep, model)
    assert.ok(Math.abs(ms / row.msPerStep! - 1) <= 0.25, `model ${ms.toFixed(1)} ms vs recorded ${row.msPerStep!.toFixed(1)} ms`)
    // The old rule (FLOPs at 15% of FP32 peak + 4 ms) said ~4 ms here, ~100x off.
    const oldRuleMs = (bench.flopsPerStep / (0.15 * 67e12)) * 1000 + 4
    assert.ok(ms > 20 * oldRuleMs)
  })

  it('fits both constants by least squares once rows differ in FLOPs per kernel', () => {
    const truth = {perKernelMs: 0.02, achievedTflops: 5}
    const points = [{kernelsPerStep: 400, flopsPerStep: 2.2e9, batch: 64}, {kernelsPerStep: 400, flopsPerStep: 17.6e9, batch: 512}]
      .map((p) => ({...p, msPerStep: modelStepMs(p.kernelsPerStep, p.flopsPerStep, truth)}))
    const fit = fitCalibration(h200, 'webgpu', points, {file: 'x.json', date: '2027-01-01'})
    assert.equal(fit.fit, 'least-squares')
    assert.ok(Math.abs(fit.perKernelMs - 0.02) < 1e-6 && Math.abs(fit.achievedTflops - 5) < 1e-3, JSON.stringify(fit))
  })

  it('calibrates on the tfjs-op path only: a webgpu-programs row (fewer, bigger kernels) is not a point', () => {
    const row = {backend: 'webgpu', ok: true, msPerStep: 100, kernelsPerStep: 1000, flopsPerStep: 2.2e9, batch: 64}
    const file: GpuBenchFile = {...bench, rows: [{...row, path: 'programs', kernelsPerStep: 300, msPerStep: 20}, {...row, path: 'ops'}, row]}
    assert.deepEqual(benchPoints(file, 'webgpu').map((p) => p.kernelsPerStep), [1000, 1000])
  })

  it('another GPU with a calibrated backend is extrapolated (FLOP/s by FP32 peak), and says so', () => {
    const m = stepModelFor(findGpu('A100')!, 'webgpu')!
    assert.equal(m.status, 'extrapolated')
    const from = CALIBRATIONS[0]
    assert.equal(m.perKernelMs, from.perKernelMs)
    assert.ok(Math.abs(m.achievedTflops - (from.achievedTflops * 19.5) / 67) < 1e-9)
    assert.match(m.basis, /^extrapolated: webgpu measured on H200 \(bench\/results\/gpu\.json, 2026-11-28\)/)
    assert.equal(stepModelFor(h100, 'webgpu')!.status, 'extrapolated')
  })

  it('a backend without any record is "unmeasured", priced with a named stand-in; no table, no model', () => {
    const m = stepModelFor(h100, 'tensorflow-gpu')!
    assert.equal(m.status, 'unmeasured')
    assert.equal(m.backend, 'tensorflow-gpu')
    assert.match(m.basis, /^unmeasured: no GPU bench result for tensorflow-gpu; priced with the webgpu figure as a stand-in \(bench\/results\/gpu\.json, 2026-11-28, extrapolated from H200\)$/)
    assert.equal(stepModelFor(h100, 'webgpu', []), undefined)
  })

  it('the target backend follows the launch image: CUDA 11 (launch default) -> tensorflow-gpu, else webgpu', () => {
    assert.equal(targetBackendOf(DEFAULT_IMAGE).backend, 'tensorflow-gpu')
    assert.equal(targetBackendOf('nvidia/cuda:12.4.1-runtime-ubuntu22.04').backend, 'webgpu')
    assert.equal(targetBackendOf('vastai/base-image:cuda-12.1').backend, 'webgpu')
  })

  it('a GPU stage estimate uses the counted kernels: fewer kernels, proportionally less step time', () => {
    const shape: DataShape = {trainSamples: 100, valSamples: 10, evalSamples: 10, frames: 11, grid: [64], channels: 1, source: 'config'}
    const target = {name: 'H200', gpu: h200, pricePerHour: 3.5, priceSource: 'table', model: stepModelFor(h200, 'webgpu')!}
    const at = (kernelsPerStep: number) => estimateStage({stage: 'operator', epochs: 1, batchSize: 64, accumSteps: 1, flopsPerStep: bench.flopsPerStep, localStepMs: 852, kernelsPerStep, forwardKernels: 500}, shape, target)
    const before = at(3423)
    const after = at(400)
    assert.ok(Math.abs(before.targetStepMs - 501.24) < 1, String(before.targetStepMs))
    assert.ok(after.targetStepMs < before.targetStepMs / 8)
    assert.equal(before.kernelsPerStep, 3423)
    assert.ok(Math.abs(before.samplesPerSec - 64000 / before.targetStepMs) < 1e-9)
  })
})
