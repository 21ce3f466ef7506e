/**
 * Kernels per optimizer step (bench/kernels.ts): a count, deterministic for a given code path, so it
 * can guard the fused formulations and the flat optimizer against regressions. Limits are the
 * counts reached (wasm, batch 4; the count does not depend on the batch for these stages) plus ~3%.
 * Before the flat optimizer and the fused layers: operator 2551 (wasm path) / 3811 (tfjs-op path),
 * diff_residual 585. On webgpu the hand-written programs: 348 GPU dispatches per operator step
 * (945 on the tfjs-op path, 2850 before), the goal 400.
 */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {countStepKernels} from '../../../bench/kernels.js'
import {runVulkanFixture, softwareVulkan, VULKAN_SKIP} from '../../vulkan-env.js'
import {useBackend} from './helpers.js'

const LIMITS = [
  {stage: 'operator', fused: 'auto', max: 1395},
  {stage: 'operator', fused: 'off', max: 1505},
  {stage: 'diff_residual', fused: 'auto', max: 570},
] as const

describe('kernels per training step (tf.profile, wasm)', () => {
  for (const {stage, fused, max} of LIMITS) {
    it(`${stage} (${fused === 'auto' ? 'wasm/cpu path' : 'tfjs-op path'}) runs at most ${max} kernels`, async () => {
      await useBackend('wasm')
      const c = await countStepKernels(stage, fused, 4)
      assert.ok(c.kernels <= max, `${c.kernels} kernels: ${JSON.stringify(c.byKernel)}`)
      // The update is O(1) in the parameter tensors: no per-variable chains of optimizer ops.
      assert.ok((c.byKernel.Sqrt ?? 0) <= 1 && (c.byKernel.Neg ?? 0) === 0, JSON.stringify(c.byKernel))
    })
  }
})

describe('GPU dispatches per training step (webgpu programs, software Vulkan adapter)', () => {
  const vk = softwareVulkan()
  it('an operator step dispatches at most 360 GPU programs (goal 400; the tfjs-op path runs 945)', {skip: vk ? false : VULKAN_SKIP}, async () => {
    const r = await runVulkanFixture(vk!, 'webgpu-step-count.ts', {UPS_WEBGPU_ALLOW_SOFTWARE: '1'})
    assert.equal(r.code, 0, r.stderr.slice(-3000))
    const c = JSON.parse(r.stdout.trim().split('\n').pop()!) as Awaited<ReturnType<typeof countStepKernels>>
    assert.ok(c.dispatches !== undefined && c.dispatches <= 360, `${c.dispatches} dispatches: ${JSON.stringify(c.byKernel)}`)
    // The layers ran as programs, not as their op formulations.
    for (const k of ['UpsLayerNorm', 'UpsGroupAttention', 'UpsGelu', 'UpsAdamUpdate']) assert.ok((c.byKernel[k] ?? 0) > 0, `${k} missing: ${JSON.stringify(c.byKernel)}`)
    assert.equal(c.byKernel.Softmax ?? 0, 0)
  })
})
