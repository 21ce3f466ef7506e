import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {runVulkanFixture, softwareVulkan, VULKAN_SKIP} from '../../vulkan-env.js'

interface OptimizerResult {
  weights: number
  slots: number
  ema: number
  emaSwap: number
  slotCount: number
  weightChange: number
  clipped: boolean[]
  referenceClipped: boolean[]
  dispatches: number[]
  referenceDispatches: number[]
}

interface Output {
  backend: string
  variables: number
  maxStorageBuffers: number
  checkpointAt: number
  results: Record<string, OptimizerResult>
}


const vk = softwareVulkan()

describe('the optimizer phase as WebGPU programs (software Vulkan adapter)', () => {
  it('AdamW, Adam with L2 and SGD (momentum, Nesterov, plain) match the tfjs-op path through a checkpoint restore, in few dispatches', {skip: vk ? false : VULKAN_SKIP}, async () => {
    const r = await runVulkanFixture(vk!, 'webgpu-optim-parity.ts')
    assert.equal(r.code, 0, r.stderr.slice(-3000))
    // Dawn reports invalid shaders and bindings as messages, not exceptions.
    assert.doesNotMatch(r.stderr, /validation:|Invalid ComputePipeline|Invalid BindGroup/i, r.stderr.slice(-3000))
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Output
    assert.equal(out.backend, 'webgpu')
    assert.deepEqual(Object.keys(out.results).sort(), ['adam_l2', 'adamw', 'sgd_momentum', 'sgd_nesterov', 'sgd_plain'])
    const perDispatch = out.maxStorageBuffers - 1
    const chunks = Math.ceil(out.variables / perDispatch)
    assert.ok(chunks >= 2, 'the store must need more than one concat/split dispatch')
    for (const [name, o] of Object.entries(out.results)) {
      for (const [what, err] of [['weights', o.weights], ['slots', o.slots], ['EMA', o.ema], ['EMA weights swapped in', o.emaSwap]] as const) {
        assert.ok(err <= 1e-6, `${name}: ${what} differ from the tfjs-op path by ${err} (relative)`)
      }
      assert.equal(o.slotCount, out.variables * {adamw: 2, adam_l2: 2, sgd_nesterov: 1, sgd_momentum: 1, sgd_plain: 0}[name]!, name)
      assert.ok(o.weightChange > 1e-3, `${name}: training moved the weights by only ${o.weightChange}`)
      assert.deepEqual(o.clipped, o.referenceClipped, name)
      assert.ok(o.clipped.some(Boolean) && !o.clipped.every(Boolean), `${name}: clipping must be active on some steps only`)
      // Per step: gradient concat (chunks), norm, update, EMA, split (chunks); the parameters are
      // concatenated (chunks more) only where no adopted flat buffer is valid: the first step and
      // the first after the checkpoint restore.
      const hasEma = name === 'adamw' || name === 'sgd_nesterov'
      const steady = 2 * chunks + 2 + (hasEma ? 1 : 0)
      const expected = o.dispatches.map((_, s) => steady + (s === 0 || s === out.checkpointAt ? chunks : 0))
      assert.deepEqual(o.dispatches, expected, `${name}: optimizer-phase dispatches per step`)
      assert.ok(o.referenceDispatches.every((n) => n > steady + chunks), `${name}: the tfjs-op path should dispatch more (${o.referenceDispatches})`)
    }
  })
})
