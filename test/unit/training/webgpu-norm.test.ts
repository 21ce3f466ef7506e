import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import type {NormCase} from '../../fixtures/webgpu-norm-parity.js'
import {runVulkanFixture, softwareVulkan, VULKAN_SKIP} from '../../vulkan-env.js'


interface Output {
  backend: string
  adapter: {software: boolean}
  cases: NormCase[]
  dispatches: Record<string, {programs: number; ops: number}>
}


const vk = softwareVulkan()

describe('webgpu programs: norms and GELU on a software Vulkan adapter', () => {
  it('match the tfjs-op path (output and every gradient within 1e-5) in one dispatch per pass', {skip: vk ? false : VULKAN_SKIP}, async () => {
    const r = await runVulkanFixture(vk!, 'webgpu-norm-parity.ts', {UPS_WEBGPU_ALLOW_SOFTWARE: '1'})
    assert.equal(r.code, 0, r.stderr.slice(-3000))
    // Dawn reports invalid shaders and pipelines as messages, not exceptions.
    assert.doesNotMatch(r.stderr, /validation:|Invalid ComputePipeline/, r.stderr.slice(-3000))
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Output
    assert.equal(out.backend, 'webgpu')
    assert.equal(out.adapter.software, true)

    const of = (layer: NormCase['layer']) => out.cases.filter((c) => c.layer === layer)
    assert.ok(of('layerNorm').some((c) => c.rows === 20000), 'LayerNorm is checked on 20000 rows')
    assert.ok(of('layerNorm').some((c) => c.eps === 1 && c.gain === 'zeros'), "the out_norm's eps 1 and zero gain are checked")
    assert.deepEqual([...new Set(of('layerNorm').map((c) => c.dim))].sort((a, b) => a - b), [32, 96, 130])
    assert.deepEqual([...new Set(of('rmsNorm').map((c) => c.scale))].sort(), [Math.SQRT1_2, 1])
    assert.equal(of('gelu').length, 1)
    const gradients: Record<NormCase['layer'], string[]> = {layerNorm: ['y', 'dx', 'dg', 'db'], rmsNorm: ['y', 'dx', 'dg'], gelu: ['y', 'dx']}
    for (const c of out.cases) {
      const label = `${c.layer} [${c.rows}, ${c.dim}]${c.eps === undefined ? '' : ` eps ${c.eps}`}${c.gain ? ` gain ${c.gain}` : ''}${c.scale === undefined ? '' : ` scale ${c.scale}`}`
      assert.deepEqual(Object.keys(c.errors), gradients[c.layer], label)
      for (const [name, err] of Object.entries(c.errors)) assert.ok(err <= 1e-5, `${label}: ${name} differs by ${err} (relative)`)
    }

    // One forward + backward: a regression to the op path (or an extra kernel) shows here.
    assert.deepEqual(
      Object.fromEntries(Object.entries(out.dispatches).map(([k, v]) => [k, v.programs])),
      {layerNorm: 5, rmsNorm: 4, gelu: 2},
      JSON.stringify(out.dispatches),
    )
    for (const [k, v] of Object.entries(out.dispatches)) assert.ok(v.ops > v.programs, `${k}: the op path runs ${v.ops} dispatches`)
  })
})
