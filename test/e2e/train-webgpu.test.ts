/**
 * `ups train --backend webgpu` end to end on the software Vulkan driver: the whole pipeline (epoch
 * loop, validation, checkpoints, latent cache) reads tensors asynchronously, the only way webgpu
 * reads under Node. One epoch per stage keeps it short: software WebGPU compiles every kernel.
 */
import assert from 'node:assert/strict'
import {readFile, readdir, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {hasStackTrace, runCli, tempDir} from '../helpers.js'
import {softwareVulkan, VULKAN_SKIP, vulkanEnv} from '../vulkan-env.js'
import {tinyConfig} from './train-fixtures.js'

const vk = softwareVulkan()
const STAGES = ['autoencoder', 'operator', 'diff_residual', 'consistency_distill', 'steady_prior']
const readJsonl = async (path: string) => (await readFile(path, 'utf8')).trim().split('\n').map((l) => JSON.parse(l))

describe('ups train --backend webgpu', () => {
  it('trains every stage on the software adapter and records the adapter', {skip: vk ? false : VULKAN_SKIP}, async (t) => {
    const cwd = await tempDir(t)
    await writeFile(join(cwd, 'tiny.yaml'), tinyConfig('data'))
    const sets = STAGES.flatMap((s) => ['--set', `stages.${s}.epochs=1`])
    const env = vulkanEnv({VK_ICD_FILENAMES: vk!.icd, LD_LIBRARY_PATH: vk!.libDir, UPS_WEBGPU_ALLOW_SOFTWARE: '1'})
    const r = await runCli(['train', 'tiny.yaml', '--backend', 'webgpu', '--run-dir', 'run', '--json', ...sets], {cwd, env, timeoutMs: 240_000})
    assert.equal(r.code, 0, r.stderr)
    assert.ok(!hasStackTrace(r.stdout + r.stderr), r.stderr)
    assert.doesNotMatch(r.stderr, /OffscreenCanvas/)
    assert.match(r.stderr, /^Training pipeline completed successfully/m)

    const result = JSON.parse(r.stdout)
    assert.equal(result.backend.name, 'webgpu')
    assert.equal(result.backend.adapter.software, true)
    assert.deepEqual(result.stages.map((s: {status: string}) => s.status), STAGES.map(() => 'trained'))

    const ckpt = join(cwd, 'run', 'checkpoints')
    const names = await readdir(ckpt)
    for (const stage of STAGES) {
      for (const suffix of ['', '_best', '_ema', '_epoch0001']) {
        assert.ok((await stat(join(ckpt, `${stage}${suffix}.ckpt`, 'weights.bin'))).size > 0, `${stage}${suffix}.ckpt missing: ${names}`)
      }
    }
    // The latent cache was encoded on webgpu too.
    const cacheDir = join(cwd, 'run', 'latent_cache')
    const trainCache = (await readdir(cacheDir)).find((n) => n.startsWith('burgers1d_train-'))
    assert.ok(trainCache && (await stat(join(cacheDir, trainCache, 'latents.bin'))).size > 0)

    const log = await readJsonl(join(cwd, 'run', 'logs', 'training.jsonl'))
    assert.deepEqual(log.map((l) => l.stage), STAGES)
    for (const l of log) {
      for (const k of ['loss', 'val_loss', 'grad_norm']) assert.ok(Number.isFinite(l[`${l.stage}/${k}`]), `${l.stage}/${k} = ${l[`${l.stage}/${k}`]}`)
    }

    const meta = JSON.parse(await readFile(join(cwd, 'run', 'metadata.json'), 'utf8'))
    assert.equal(meta.status, 'finished')
    assert.equal(meta.backend.name, 'webgpu')
    assert.equal(meta.training.backend, 'webgpu')
    assert.match(meta.training.backend_reason, /requested webgpu/)
    for (const adapter of [meta.backend.adapter, meta.training.adapter]) {
      assert.equal(adapter.vendor, 'mesa')
      assert.equal(adapter.software, true)
      assert.match(adapter.description, /llvmpipe/)
      assert.equal(typeof adapter.architecture, 'string')
    }
    for (const stage of STAGES) assert.ok(meta.training.step_time_ms[stage] > 0, `step_time_ms.${stage}`)
  })
})
