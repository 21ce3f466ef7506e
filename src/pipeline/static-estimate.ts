/**
 * A static cost estimate for `ups launch` until the dry-run estimate (estimateRun) is wired in:
 * hours = setup + (epochs over all enabled stages) x a fixed time per epoch; $ = hours x the GPU
 * table's reference price x GPUs. Deliberately simple and labelled "static estimate" wherever
 * it is shown; `ups launch` takes any estimator with the same signature.
 */
import {STAGES, type UpsConfig, resolveStage} from '../config/index.js'
import {findGpu} from './gpus.js'

export interface RunEstimate {
  hours: number
  usd: number
  pricePerHour: number
  /** Who made the figure, shown next to it. */
  source?: string
}

/** The estimator launch depends on: the config, and the GPU name it will rent. */
export type EstimateFn = (config: UpsConfig, gpu: string) => Promise<RunEstimate>

/**
 * Minutes per epoch of the runbook's burgers 32-dim config on an A100 (the upstream project's
 * observed order of magnitude); the same figure is used for every GPU because small models
 * are launch-bound, not FLOP-bound.
 */
export const STATIC_MINUTES_PER_EPOCH = 2
/** Node install, npm ci, data fetch, doctor, evaluation. */
export const STATIC_SETUP_MINUTES = 15
/** Price when the GPU is not in the table (the runbook's A100 reference). */
export const STATIC_FALLBACK_PRICE = 1.89
export const STATIC_ESTIMATE_LABEL = 'static estimate'

export function staticEstimate(config: UpsConfig, gpu: string): RunEstimate {
  const epochs = STAGES.map((s) => resolveStage(config, s)).filter((s) => s.enabled).reduce((sum, s) => sum + s.epochs, 0)
  const hours = (STATIC_SETUP_MINUTES + epochs * STATIC_MINUTES_PER_EPOCH) / 60
  const pricePerHour = (findGpu(gpu)?.pricePerHour ?? STATIC_FALLBACK_PRICE) * (config.vast?.num_gpus ?? 1)
  return {hours: round(hours, 3), usd: round(hours * pricePerHour, 2), pricePerHour, source: STATIC_ESTIMATE_LABEL}
}

export const staticEstimateFn: EstimateFn = async (config, gpu) => staticEstimate(config, gpu)

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits
