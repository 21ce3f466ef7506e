/**
 * The data-parallel optimizer step: one seed per micro-batch drawn from the stage's RNG in
 * micro-batch order, contiguous shares (main first, then each worker), gradients summed in that
 * order, then the usual clip / update / EMA. With no pool the same math runs on the main thread
 * alone (the reference the parallel path is tested against).
 */
import * as tf from '@tensorflow/tfjs'

import {ExitCode, UserError} from '../../util/errors.js'
import type {Grads} from '../optim.js'
import {Rng} from '../rng.js'
import type {StageSpec} from '../stages/types.js'
import {applyAccumulatedAsync, GradientAccumulator, type TrainStepResult} from '../step.js'
import type {ParamStore} from '../params.js'
import {ReplicaError, ReplicaPool} from './pool.js'
import type {ReplicaRecipe} from './protocol.js'
import {flattenParams, runMicroBatches} from './replica.js'

export type ApplyOptions = Omit<Parameters<typeof applyAccumulatedAsync>[1], 'store'>

/** Contiguous [start, end) ranges of `n` micro-batches over at most `replicas` replicas; main's first. */
export function splitShares(n: number, replicas: number): Array<[number, number]> {
  const r = Math.max(1, Math.min(replicas, n))
  const base = Math.floor(n / r)
  const extra = n % r
  const out: Array<[number, number]> = []
  let at = 0
  for (let k = 0; k < r; k++) {
    const size = base + (k < extra ? 1 : 0)
    out.push([at, at + size])
    at += size
  }
  return out
}

export async function dataParallelStep(
  spec: StageSpec,
  group: number[][],
  rng: Rng,
  pool: ReplicaPool | null,
  o: ApplyOptions,
  injectNaN = false,
): Promise<{result: TrainStepResult; items: number}> {
  const seeds = group.map(() => rng.nextUint32())
  const shares = splitShares(group.length, pool?.replicas ?? 1)
  const acc = new GradientAccumulator(spec.store)
  let items = 0
  let pending: Promise<Awaited<ReturnType<ReplicaPool['dispatch']>>> = Promise.resolve([])
  if (pool && shares.length > 1) {
    const params = await flattenParams(spec.store)
    pending = pool.dispatch(params, shares.slice(1).map(([s, e]) => ({batches: group.slice(s, e), seeds: seeds.slice(s, e)})))
    pending.catch(() => undefined) // awaited below; a failure while main computes is not "unhandled"
  }
  const [s0, e0] = pool ? shares[0] : [0, group.length]
  items += await runMicroBatches(spec, acc, group.slice(s0, e0), (m) => new Rng(seeds[s0 + m]), injectNaN)
  let results
  try {
    results = await pending
  } catch (error) {
    throw replicaFailure(error, o.context)
  }
  const entries = spec.store.entries()
  for (const r of results) {
    const grads: Grads = new Map()
    let at = 0
    for (const [i, [name, v]] of entries.entries()) {
      if (r.present[i]) grads.set(name, tf.tensor(r.grads.subarray(at, at + v.size), v.shape, 'float32'))
      at += v.size
    }
    acc.addSummed(grads, r.lossSum, r.count)
    items += r.items
  }
  return {result: await applyAccumulatedAsync(acc, {...o, store: spec.store}), items}
}

function replicaFailure(error: unknown, ctx: ApplyOptions['context']): Error {
  if (!(error instanceof ReplicaError)) return error as Error
  const cause = Object.assign(new Error(error.message), {stack: error.remoteStack ?? error.stack})
  return new UserError(`Data-parallel replica ${error.replica} (worker thread) failed in stage ${ctx.stage}, epoch ${ctx.epoch}, step ${ctx.step}: ${error.message}`, {
    code: 'TRAIN_REPLICA_FAILED',
    hint: 'Rerun with --verbose for the worker\'s stack trace; `--set training.workers=1` trains on the main thread only. Resume with `ups train CONFIG --run-dir RUN --resume`.',
    exitCode: ExitCode.CHECK_FAILED,
    cause,
    details: {...ctx, replica: error.replica, ...(error.remoteCode ? {worker_code: error.remoteCode} : {})},
  })
}

/**
 * The worker threads of a stage's `replicas` (none for one: undefined), each building its model
 * from `recipe()` (called only then: a training recipe moves the stage's data into shared memory).
 * A start-up failure is a UserError naming the stage.
 */
export async function startStageReplicas(stage: string, replicas: number, o: {backend: string; store: ParamStore; recipe: () => ReplicaRecipe}): Promise<ReplicaPool | undefined> {
  if (replicas < 2) return undefined
  return ReplicaPool.start({workers: replicas - 1, backend: o.backend, recipe: o.recipe(), store: o.store}).catch((e: unknown) => {
    throw replicaStartFailure(e, stage)
  })
}

/** A pool start-up failure as a UserError naming the stage. */
export function replicaStartFailure(error: unknown, stage: string): Error {
  if (!(error instanceof ReplicaError)) return error as Error
  return new UserError(`Could not start data-parallel replica ${error.replica} for stage ${stage}: ${error.message}`, {
    code: 'TRAIN_REPLICA_FAILED',
    hint: '`--set training.workers=1` trains on the main thread only; rerun with --verbose for the worker\'s stack trace.',
    exitCode: ExitCode.CHECK_FAILED,
    cause: Object.assign(new Error(error.message), {stack: error.remoteStack ?? error.stack}),
  })
}
