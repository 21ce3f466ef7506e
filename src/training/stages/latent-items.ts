/** Items of the latent stages: (trajectory, t) pairs read from the latent cache. */
import * as tf from '@tensorflow/tfjs'

import type {LatentSplit} from '../cache.js'
import type {SplitData, TrajectoryRef} from '../data.js'

export interface LatentPairs {
  count: number
  /** z_t [B, tokens, dim] and its target z_{t+1} (or z_last for the steady prior). */
  batch(indices: number[]): {z0: tf.Tensor3D; z1: tf.Tensor3D}
}

/**
 * Pairs over `refs`: item i is trajectory refs[floor(i / (F-1))] at t = i mod (F-1), with target
 * frame t+1 (`target: 'next'`) or the last frame (`target: 'last'`).
 */
export function latentPairs(refs: TrajectoryRef[], latents: Map<SplitData, LatentSplit>, target: 'next' | 'last'): LatentPairs {
  const first = refs[0] ? latents.get(refs[0].split) : undefined
  const [, frames, tokens, dim] = first?.shape ?? [0, 0, 0, 0]
  const per = Math.max(0, frames - 1)
  const size = tokens * dim
  const fill = (indices: number[], which: 0 | 1): Float32Array => {
    const out = new Float32Array(indices.length * size)
    indices.forEach((item, b) => {
      const ref = refs[Math.floor(item / per)]
      const t = item % per
      const frame = which === 0 ? t : target === 'next' ? t + 1 : frames - 1
      const data = latents.get(ref.split)!.data
      const start = (ref.index * frames + frame) * size
      out.set(data.subarray(start, start + size), b * size)
    })
    return out
  }
  return {
    count: refs.length * per,
    batch: (indices) => ({
      z0: tf.tensor3d(fill(indices, 0), [indices.length, tokens, dim]),
      z1: tf.tensor3d(fill(indices, 1), [indices.length, tokens, dim]),
    }),
  }
}
