/**
 * The real dependencies of the pipeline commands: the real steps (train/evaluate loaded at run
 * time), this process's clock, environment and working folder, and progress on stderr.
 */
import {randomBytes} from 'node:crypto'
import {statfs} from 'node:fs/promises'
import {homedir, totalmem} from 'node:os'

import {kernelCachePath} from '../pipeline/kernel-cache.js'
import type {PipelineDeps} from '../pipeline/run.js'
import type {SystemProbe} from '../pipeline/resources.js'
import {realPipelineSteps, type RealStepsDeps} from '../pipeline/steps.js'
import type {Logger} from '../util/logger.js'
import {redactSecrets} from '../util/secrets.js'
import {trainingProgress} from './progress.js'
import {realWandbDeps} from './tracking-deps.js'
import {realVastProvider} from './vast.js'

/** This machine's RAM and free disk, for the dry-run's warnings. */
export const realSystemProbe: SystemProbe = {
  totalMemBytes: () => totalmem(),
  async freeDiskBytes(path) {
    const s = await statfs(path)
    return s.bavail * s.bsize
  },
}

export function stderrProgress(line: string): void {
  process.stderr.write(redactSecrets(line) + '\n')
}

export function realStepsDeps(logger: Logger, flags: {'vastai-bin'?: string} = {}): RealStepsDeps {
  return {
    cwd: process.cwd(),
    env: process.env,
    now: () => new Date(),
    monotonic: () => performance.now(),
    provider: () => realVastProvider(flags, logger),
    onProgress: stderrProgress,
    onTrainProgress: trainingProgress(process.stderr, () => Date.now()),
    system: realSystemProbe,
    kernelCacheFile: kernelCachePath(process.env, homedir()),
    logger,
    wandb: realWandbDeps(logger),
  }
}

export function realPipelineDeps(logger: Logger, runsRoot?: string): PipelineDeps {
  const stepsDeps = realStepsDeps(logger)
  return {
    steps: realPipelineSteps(stepsDeps),
    now: stepsDeps.now,
    randomHex: () => randomBytes(2).toString('hex'),
    cwd: stepsDeps.cwd,
    runsRoot,
    onProgress: stderrProgress,
    wandb: stepsDeps.wandb,
  }
}
