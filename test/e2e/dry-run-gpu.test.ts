import assert from 'node:assert/strict'
import {cp, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {REPO_ROOT, runCli, tempDir} from '../helpers.js'

describe('ups dry-run on a GPU target: the calibrated step model', () => {
  it('--gpu H200 --target-backend webgpu --json: calibrated, backend and calibration source named, kernels counted per stage', {timeout: 180_000}, async (t) => {
    const dir = await tempDir(t, 'ups-e2e-gpu-est-')
    await cp(join(REPO_ROOT, 'configs'), join(dir, 'configs'), {recursive: true})
    const env = {UPS_HOME: join(dir, 'home')}
    const r = await runCli(['dry-run', 'configs/local_smoke.yaml', '--estimate-only', '--static', '--gpu', 'H200', '--target-backend', 'webgpu', '--json'], {cwd: dir, env})
    assert.equal(r.code, 0, r.stderr)
    const e = JSON.parse(r.stdout).estimate
    assert.equal(e.gpuModel.backend, 'webgpu')
    assert.equal(e.gpuModel.status, 'calibrated')
    assert.deepEqual(e.gpuModel.calibration.source, {file: 'bench/results/gpu.json', date: '2026-11-28'})
    assert.match(e.line, /on H200 \(\$3\.50\/hr\), webgpu calibrated$/)
    for (const s of e.stages) assert.ok(s.kernelsPerStep > 0 && s.samplesPerSec > 0 && s.targetStepMs > s.kernelsPerStep * 0.1, JSON.stringify(s))
    const written = JSON.parse(await readFile(join(dir, 'artifacts', 'estimate.json'), 'utf8'))
    assert.equal(written.gpuModel.basis, e.gpuModel.basis)
    // The counts are kept under $UPS_HOME: the next estimate of this config (launch, recover) reuses them.
    const cache = JSON.parse(await readFile(join(dir, 'home', 'cache', 'kernel-counts.json'), 'utf8'))
    const cached = Object.values(cache).map((v) => (v as {value: {kernelsPerStep: number}}).value.kernelsPerStep).sort()
    assert.deepEqual(cached, e.stages.map((s: {kernelsPerStep: number}) => s.kernelsPerStep).sort())
    const again = await runCli(['dry-run', 'configs/local_smoke.yaml', '--estimate-only', '--static', '--gpu', 'H200', '--target-backend', 'webgpu', '--json'], {cwd: dir, env})
    assert.deepEqual(JSON.parse(again.stdout).estimate.stages, e.stages)

    // H100 has no record: webgpu is extrapolated from the H200; the default image's tensorflow-gpu is unmeasured.
    const h100 = await runCli(['dry-run', 'configs/local_smoke.yaml', '--estimate-only', '--static', '--gpu', 'H100', '--target-backend', 'webgpu'], {cwd: dir})
    assert.equal(h100.code, 0, h100.stderr)
    assert.match(h100.stdout, /, webgpu extrapolated\n/)
    assert.match(h100.stdout, /Step model: extrapolated: webgpu measured on H200 \(bench\/results\/gpu\.json, 2026-11-28\)/)
    const tfGpu = await runCli(['dry-run', 'configs/local_smoke.yaml', '--estimate-only', '--static', '--gpu', 'H100'], {cwd: dir})
    assert.equal(tfGpu.code, 0, tfGpu.stderr)
    assert.match(tfGpu.stdout, /, tensorflow-gpu unmeasured\nTarget backend: tensorflow-gpu \(image nvidia\/cuda:11\.2\.2-cudnn8-runtime-ubuntu20\.04 has CUDA 11/)
  })
})
