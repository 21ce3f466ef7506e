/**
 * The one place evaluation gets a trained simulator: the training engine's `loadSimulator`
 * (src/training/train.ts), imported lazily because it loads tfjs. Before loading, the checkpoint
 * folder is checked here, so a missing or corrupt folder is a clear error whatever the engine does.
 */
import {readdir, stat} from 'node:fs/promises'

import type {UpsConfig} from '../config/schema.js'
import {ExitCode, isUserError, UserError} from '../util/errors.js'
import {latestValidCheckpoint} from './checkpoint.js'
import type {Simulator} from './evaluate.js'

export interface CheckpointInventory {
  dir: string
  /** Latest valid checkpoint per stage found: path, epoch, step and the weights' sha256. */
  stages: Record<string, {path: string; epoch: number; step: number; weightsSha256: string}>
  /** Corrupt or partial checkpoints passed over. */
  skipped: Array<{path: string; reason: string}>
}

const STAGE_OF = /^\.?(.+?)(?:_epoch\d+)?\.ckpt(?:\.[0-9a-z]+\.(?:tmp|old))?$/

/** Lists and verifies the checkpoints in `dir`; throws a UserError when there is nothing usable. */
export async function inspectCheckpoints(dir: string): Promise<CheckpointInventory> {
  const info = await stat(dir).catch(() => null)
  if (!info || !info.isDirectory()) {
    throw new UserError(`The checkpoint folder ${dir} ${info ? 'is not a folder' : 'does not exist'}.`, {
      code: 'EVAL_CHECKPOINTS_MISSING',
      hint: 'Pass the checkpoints/ folder of a trained run, e.g. --checkpoints artifacts/runs/<run_id>/checkpoints.',
      exitCode: ExitCode.USAGE,
    })
  }
  const names = await readdir(dir)
  const stageNames = [...new Set(names.map((n) => STAGE_OF.exec(n)?.[1]).filter((s): s is string => Boolean(s)))].sort()
  if (stageNames.length === 0) {
    throw new UserError(`The checkpoint folder ${dir} holds no checkpoints (no <stage>.ckpt folders).`, {
      code: 'EVAL_NO_CHECKPOINTS',
      hint: 'Train first (`ups train CONFIG`), or point --checkpoints at the run that was trained.',
      exitCode: ExitCode.USAGE,
    })
  }
  const inventory: CheckpointInventory = {dir, stages: {}, skipped: []}
  for (const stage of stageNames) {
    const latest = await latestValidCheckpoint(dir, stage)
    inventory.skipped.push(...latest.skipped)
    if (latest.checkpoint) {
      const c = latest.checkpoint
      inventory.stages[stage] = {path: c.path, epoch: c.epoch, step: c.step, weightsSha256: c.manifest.weightsSha256}
    }
  }
  const unusable = stageNames.filter((s) => !inventory.stages[s])
  if (unusable.length > 0) {
    const reasons = inventory.skipped.map((s) => `  ${s.reason}`).join('\n')
    throw new UserError(`No valid checkpoint for stage(s) ${unusable.join(', ')} in ${dir}:\n${reasons}`, {
      code: 'EVAL_CHECKPOINT_CORRUPT',
      hint: 'Retrain the stage (`ups resume RUN --force-train`) or restore the checkpoint folder from a backup.',
      exitCode: ExitCode.CHECK_FAILED,
      details: {skipped: inventory.skipped},
    })
  }
  return inventory
}

/**
 * The trained simulator from `checkpointsDir`, through the training engine's loadSimulator,
 * adapted to evaluation's interface: evaluation feeds normalised fields and de-normalises
 * itself, so encode/decode run with `normalized: true`.
 */
export async function loadSimulatorForEval(config: UpsConfig, checkpointsDir: string): Promise<Simulator> {
  const {loadSimulator} = await import('./simulator.js')
  let engine: Awaited<ReturnType<typeof loadSimulator>>
  try {
    engine = await loadSimulator(config, checkpointsDir, {backend: 'auto'})
  } catch (error) {
    if (isUserError(error)) throw error
    throw new UserError(`Could not load the simulator from ${checkpointsDir}: ${(error as Error)?.message ?? String(error)}`, {
      code: 'EVAL_LOAD_FAILED',
      hint: 'Check that the checkpoints were trained with this config (`ups validate CONFIG`); --verbose shows the stack.',
      exitCode: ExitCode.CHECK_FAILED,
      cause: error,
    })
  }
  const task = engine.tasks[0]
  const correct = engine.correct
  return {
    encode: (u, shape) => engine.encode(u, shape, {task, normalized: true}),
    decode: (z) => engine.decode(z as Parameters<typeof engine.decode>[0], {task, normalized: true}),
    step: (z, dt) => engine.step(z as Parameters<typeof engine.step>[0], dt),
    correct: correct ? (prediction, context) => correct(prediction as Parameters<typeof correct>[0], {tau: context.tau, noise: context.noise}) : undefined,
    correctorKind: correct ? (engine.distilled ? 'distilled one-step student' : 'diffusion corrector (multi-step)') : undefined,
    normStats: engine.normStats[task],
    hashes: engine.hashes as Record<string, string>,
    dispose: () => engine.dispose(),
  }
}
