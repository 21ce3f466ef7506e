/** Items of the latent stages: (trajectory, t) pairs read from the latent cache. */
import * as tf from '@tensorflow/tfjs'

import {blockedOrder} from '../blocks.js'
import {type LatentSplit, readLatentTrajectories} from '../cache.js'
import {type SplitData, type TrajectoryAccess, trajectoryAccess, type TrajectoryRef} from '../data.js'
import type {StageSpec} from './types.js'

export interface LatentPairs {
  count: number
  /** z_t [B, tokens, dim] and its target z_{t+1} (or z_last for the steady prior). */
  batch(indices: number[]): {z0: tf.Tensor3D; z1: tf.Tensor3D}
  /** The trajectories behind the items (streamed: the block cache); item i is ref floor(i / perRef). */
  access?: TrajectoryAccess
  perRef?: number
}

/**
 * The streamed parts of a stage's spec over `access` (items perRef per ref): the blocked epoch
 * order, the prefetch of the next step's blocks. Nothing when in memory.
 */
export function streamedItems(access: TrajectoryAccess | undefined, perRef: number): Pick<StageSpec, 'epochOrder' | 'prefetch'> {
  const blocks = access?.blocks
  if (!blocks || perRef < 1) return {}
  const refsOf = (items: number[]): number[] => items.map((i) => Math.floor(i / perRef))
  return {
    epochOrder: (rng) => blockedOrder(rng, blocks.blocks, perRef),
    prefetch: (ahead, current) => blocks.prefetch(refsOf(ahead), refsOf(current)),
  }
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
  // Each split's cache is in memory or on disk on its own: stream when any of them is on disk
  // (reads of an in-memory split through the block cache are plain subarrays).
  const onDisk = refs.map((r) => latents.get(r.split)!).find((l) => l.file && l.data.length === 0)
  const access = trajectoryAccess(refs, frames * size, {
    streamed: onDisk !== undefined, blockTrajectories: onDisk?.blockTrajectories,
    read: (s, lo, hi) => readLatentTrajectories(latents.get(s)!, lo, hi), inMemory: (s) => latents.get(s)!.data,
  })
  const fill = (indices: number[], which: 0 | 1): Float32Array => {
    const out = new Float32Array(indices.length * size)
    access.blocks?.ensure(indices.map((i) => Math.floor(i / per)))
    indices.forEach((item, b) => {
      const pos = Math.floor(item / per)
      const t = item % per
      const frame = which === 0 ? t : target === 'next' ? t + 1 : frames - 1
      const {data, offset} = access.trajectory(pos)
      const start = offset + frame * size
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
    access,
    perRef: per,
  }
}
