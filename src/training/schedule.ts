/**
 * Learning-rate schedulers, stepped once per epoch (PyTorch semantics):
 *   steplr:            lr = base * gamma^floor(epoch / step_size)
 *   cosineannealinglr: lr = eta_min + (base - eta_min) * (1 + cos(pi * epoch / t_max)) / 2
 *   reducelronplateau: multiply by `factor` when the monitored (validation) loss has not improved
 *                      by more than `threshold` (relative) for more than `patience` epochs
 * With `warmupEpochs` w > 0, epochs 0..w-1 ramp linearly, lr = base * (epoch + 1) / (w + 1), and
 * the schedule above starts at epoch w as its own epoch 0 (a cosine spans t_max epochs after it).
 * State is a small JSON object saved with the checkpoint.
 */
import {ExitCode, UserError} from '../util/errors.js'

export type SchedulerConfig = (
  | {type: 'none'}
  | {type: 'steplr'; stepSize: number; gamma?: number}
  | {type: 'cosineannealinglr'; tMax: number; etaMin?: number}
  | {
      type: 'reducelronplateau'
      factor?: number
      patience?: number
      threshold?: number
      cooldown?: number
      minLr?: number
    }
) & {warmupEpochs?: number}

export interface SchedulerState {
  type: SchedulerConfig['type']
  baseLr: number
  epoch: number
  lr: number
  best: number | null
  badEpochs: number
  cooldownLeft: number
}

export class Scheduler {
  private s: SchedulerState

  constructor(readonly config: SchedulerConfig, baseLr: number) {
    const known = ['none', 'steplr', 'cosineannealinglr', 'reducelronplateau']
    if (!known.includes(config.type)) {
      throw new UserError(`Unknown scheduler "${config.type}".`, {
        code: 'TRAIN_SCHEDULER_UNKNOWN',
        hint: `Use one of: ${known.join(', ')}.`,
        exitCode: ExitCode.CHECK_FAILED,
      })
    }
    const lr = this.warmup > 0 ? baseLr / (this.warmup + 1) : baseLr
    this.s = {type: config.type, baseLr, epoch: 0, lr, best: null, badEpochs: 0, cooldownLeft: 0}
  }

  private get warmup(): number {
    return Math.max(0, Math.floor(this.config.warmupEpochs ?? 0))
  }

  /** The learning rate for the current epoch. */
  get lr(): number {
    return this.s.lr
  }

  /** Ends an epoch; `metric` (validation loss) is required by reducelronplateau. Returns the new lr. */
  step(metric?: number): number {
    const c = this.config
    const s = this.s
    s.epoch += 1
    const w = this.warmup
    if (s.epoch < w) {
      s.lr = (s.baseLr * (s.epoch + 1)) / (w + 1)
      return s.lr
    }
    // The schedule's own epoch; the first one after the warm-up starts from the base lr.
    const epoch = s.epoch - w
    if (w > 0 && epoch === 0) {
      s.lr = s.baseLr
      return s.lr
    }
    switch (c.type) {
      case 'none':
        break
      case 'steplr':
        s.lr = s.baseLr * (c.gamma ?? 0.1) ** Math.floor(epoch / c.stepSize)
        break
      case 'cosineannealinglr': {
        const etaMin = c.etaMin ?? 0
        s.lr = etaMin + ((s.baseLr - etaMin) * (1 + Math.cos((Math.PI * epoch) / c.tMax))) / 2
        break
      }
      case 'reducelronplateau': {
        if (metric === undefined || !Number.isFinite(metric)) break
        const threshold = c.threshold ?? 1e-4
        if (s.best === null || metric < s.best * (1 - threshold)) {
          s.best = metric
          s.badEpochs = 0
        } else {
          s.badEpochs += 1
        }
        if (s.cooldownLeft > 0) {
          s.cooldownLeft -= 1
          s.badEpochs = 0
        }
        if (s.badEpochs > (c.patience ?? 10)) {
          const next = Math.max(s.lr * (c.factor ?? 0.1), c.minLr ?? 0)
          if (s.lr - next > 1e-8) s.lr = next
          s.cooldownLeft = c.cooldown ?? 0
          s.badEpochs = 0
        }
        break
      }
    }
    return s.lr
  }

  state(): SchedulerState {
    return {...this.s}
  }

  load(state: SchedulerState): void {
    if (state.type !== this.config.type) {
      throw new UserError(`The checkpoint's scheduler is ${state.type}, the config asks for ${this.config.type}.`, {
        code: 'CHECKPOINT_MISMATCH',
        exitCode: ExitCode.CHECK_FAILED,
      })
    }
    this.s = {...state}
  }
}

export function createScheduler(config: SchedulerConfig, baseLr: number): Scheduler {
  return new Scheduler(config, baseLr)
}
