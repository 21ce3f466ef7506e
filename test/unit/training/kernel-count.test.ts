/**
 * Kernels per optimizer step (bench/kernels.ts): a count, deterministic for a given code path, so it
 * can guard the fused formulations and the flat optimizer against regressions. Limits are the
 * counts reached (wasm, batch 4; the count does not depend on the batch for these stages) plus ~3%.
 * Before the flat optimizer and the fused layers: operator 2551 (wasm path) / 3811 (tfjs-op path),
 * diff_residual 585.
 */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {countStepKernels} from '../../../bench/kernels.js'
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
