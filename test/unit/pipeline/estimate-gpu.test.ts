import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {loadConfig, type UpsConfig} from '../../../src/config/index.js'
import type {DataShape} from '../../../src/pipeline/estimate-math.js'
import {estimateRun} from '../../../src/pipeline/estimate.js'
import {CALIBRATIONS} from '../../../src/pipeline/gpu-calibration.js'
import {dryRunEstimateFn} from '../../../src/pipeline/launch-estimate.js'
import {tempDir} from '../../helpers.js'
import {TINY_CONFIG} from './fake-steps.js'

const shape: DataShape = {trainSamples: 20, valSamples: 2, evalSamples: 2, frames: 5, grid: [16], channels: 1, source: 'config'}

async function tiny(t: import('node:test').TestContext): Promise<{config: UpsConfig; dir: string}> {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'c.yaml'), TINY_CONFIG.replace('autoencoder: {epochs: 1}', 'autoencoder: {epochs: 0}') + 'training: {batch_size: 4, accum_steps: 2}\n')
  return {config: (await loadConfig(join(dir, 'c.yaml'))).config, dir}
}

describe('GPU estimate of a run', () => {
  it('names the backend assumed on the target and the calibration it used, with counted kernels per stage', async (t) => {
    const {config, dir} = await tiny(t)
    const deps = {cwd: dir, now: () => performance.now(), backend: 'cpu' as const}
    const e = await estimateRun(config, {gpu: 'H200', static: true, shape, targetBackend: 'webgpu'}, deps)
    assert.equal(e.gpuModel?.backend, 'webgpu')
    assert.equal(e.gpuModel?.status, 'calibrated')
    assert.deepEqual(e.gpuModel?.calibration.source, {file: 'bench/results/gpu.json', date: '2026-11-28'})
    assert.match(e.line, /on H200 \(\$3\.50\/hr\), webgpu calibrated$/)
    const op = e.models.find((m) => m.stage === 'operator')!
    assert.ok(op.kernelsPerStep! > 100 && op.forwardKernels! > 10 && op.forwardKernels! < op.kernelsPerStep!, JSON.stringify(op))
    assert.deepEqual(op.microBatch, {rows: 8, passes: 1, backend: 'webgpu'}, 'the GPU policy: batch 4 x accum 2 in one pass')
    const stage = e.stages.find((s) => s.stage === 'operator')!
    const cal = CALIBRATIONS[0]
    // Step FLOPs: the model's per-micro-batch figure x accum_steps 2.
    const expected = op.kernelsPerStep! * cal.perKernelMs + (op.flopsPerStep * 2) / (cal.achievedTflops * 1e9)
    assert.ok(Math.abs(stage.targetStepMs - expected) < 1e-9, `${stage.targetStepMs} vs ${expected}`)
    assert.equal(stage.kernelsPerStep, op.kernelsPerStep)

    // Default image (CUDA 11.2): tensorflow-gpu, no record: "unmeasured", with the stand-in named.
    const d = await estimateRun(config, {gpu: 'H100', static: true, shape}, deps)
    assert.equal(d.gpuModel?.backend, 'tensorflow-gpu')
    assert.equal(d.gpuModel?.status, 'unmeasured')
    assert.match(d.gpuModel!.backendReason, /CUDA 11/)
    assert.match(d.notes.join('\n'), /GPU step model: unmeasured: no GPU bench result for tensorflow-gpu; priced with the webgpu figure as a stand-in/)
  })

  it('launch\'s budget figure is the dry-run estimate for the image it will start (the watchdog reads it back from the record)', async (t) => {
    const {config, dir} = await tiny(t)
    const deps = {cwd: dir, now: () => performance.now(), backend: 'cpu' as const}
    const fn = dryRunEstimateFn(deps, {static: true})
    const viaLaunch = await fn(config, 'H200', {image: 'nvidia/cuda:12.4.1-runtime-ubuntu22.04'})
    const direct = await estimateRun(config, {gpu: 'H200', static: true, targetBackend: 'webgpu'}, deps)
    assert.equal(viaLaunch.hours, direct.hours)
    assert.equal(viaLaunch.usd, direct.costUsd)
    assert.match(viaLaunch.source!, /webgpu calibrated/)
    assert.match((await fn(config, 'H200'))!.source!, /tensorflow-gpu unmeasured/)
  })
})
