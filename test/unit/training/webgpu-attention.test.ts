import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {runVulkanFixture, softwareVulkan, VULKAN_SKIP} from '../../vulkan-env.js'

interface Case {
  shape: {batch: number; tokens: number; groups: number; heads: number; headDim: number}
  /** Relative errors of output, dqkv, dgq, dgk against the cpu backend's JS kernel. */
  vsCpu: number[]
  /** The same against the tfjs-op formulation on webgpu. */
  vsOps: number[]
  dispatches: {forward: number; forwardBackward: number; ops: number}
}

interface Parity {
  backend: string
  adapter: {software: boolean}
  cases: Case[]
  operator: {params: number; maxRelError: number; paramErrors: Record<string, number>; gainGradScale: number; dispatches: {program: number; ops: number}}
}


const vk = softwareVulkan()

describe('group attention as WebGPU programs (software Vulkan adapter)', () => {
  it('matches the JS kernel and the tfjs-op path in value and gradients, in one dispatch forward and four backward', {skip: vk ? false : VULKAN_SKIP}, async () => {
    const r = await runVulkanFixture(vk!, 'webgpu-attention-parity.ts')
    assert.equal(r.code, 0, r.stderr.slice(-3000))
    // Dawn reports invalid shaders and pipelines as messages, not exceptions.
    assert.doesNotMatch(r.stderr, /validation:|Invalid ComputePipeline|Error while parsing WGSL/, r.stderr.slice(-3000))
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Parity
    assert.equal(out.backend, 'webgpu')
    assert.equal(out.adapter.software, true)
    assert.equal(out.cases.length, 3)
    const parts = ['output', 'dqkv', 'dgq', 'dgk']
    for (const c of out.cases) {
      const name = JSON.stringify(c.shape)
      parts.forEach((part, i) => {
        assert.ok(c.vsCpu[i] <= 1e-5, `${name} ${part}: relative error ${c.vsCpu[i]} against the cpu JS kernel`)
        assert.ok(c.vsOps[i] <= 1e-5, `${name} ${part}: relative error ${c.vsOps[i]} against the tfjs-op path`)
      })
      // A fall-back to the op formulation (~80 dispatches) or an extra slice would show here.
      assert.equal(c.dispatches.forward, 1, `${name}: forward dispatches`)
      assert.equal(c.dispatches.forwardBackward, 5, `${name}: forward + backward dispatches`)
    }
    const op = out.operator
    assert.ok(op.params > 50, `only ${op.params} operator gradients compared`)
    // The attention gains' gradients are compared for real (not all zero).
    assert.ok(op.gainGradScale > 1e-4, `q/k gain gradients ${op.gainGradScale}`)
    // Per parameter, relative to its gradient's scale: the gains of the 2- and 3-token levels sum
    // terms that nearly cancel, where even the op path on webgpu and on cpu differ by ~4e-5.
    const worst = Object.entries(op.paramErrors).sort((a, b) => b[1] - a[1])[0]
    assert.ok(op.maxRelError <= 1e-4, `operator gradient ${worst[0]}: relative error ${worst[1]}`)
    assert.ok(op.dispatches.program < op.dispatches.ops, `operator step: ${op.dispatches.program} dispatches with the programs, ${op.dispatches.ops} with ops`)
  })
})
