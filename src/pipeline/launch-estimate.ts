/**
 * The estimate `ups launch` checks against the budget: the dry-run estimator (estimateRun),
 * reduced to hours, dollars and the price it assumed, for the GPU launch will rent.
 */
import type {UpsConfig} from '../config/index.js'
import {type EstimateDeps, estimateRun, type RunEstimate} from './estimate.js'

export interface LaunchEstimate {
  hours: number
  usd: number
  pricePerHour: number
  /** Who made the figure, shown next to it. */
  source?: string
}

/** The estimator launch depends on: the config, the GPU name it will rent, and the image (it decides the backend there). */
export type EstimateFn = (config: UpsConfig, gpu: string, target?: {image?: string}) => Promise<LaunchEstimate>

/** `static: true` uses the throughput table alone (no timed steps): fast, less exact. */
export function dryRunEstimateFn(deps: EstimateDeps, options: {static?: boolean} = {}): EstimateFn {
  return async (config, gpu, target) => launchEstimateOf(await estimateRun(config, {gpu, static: options.static ?? false, image: target?.image}, deps), config)
}

/** The one figure launch's budget guard checks and its record keeps (the watchdog's "cost > factor x estimate" reads it back). */
export function launchEstimateOf(estimate: RunEstimate, config: UpsConfig): LaunchEstimate {
  const gpus = config.vast?.num_gpus ?? 1
  const model = estimate.gpuModel ? `, ${estimate.gpuModel.backend} ${estimate.gpuModel.status}` : ''
  return {
    hours: estimate.hours,
    usd: Math.round(estimate.costUsd * gpus * 100) / 100,
    pricePerHour: estimate.target.pricePerHour * gpus,
    source: `dry-run estimate (${estimate.method}${model}, ${estimate.target.priceSource})`,
  }
}

export interface ConfigOfferDefaults {
  /** Hours the dry-run estimator gives the config on `gpu`. */
  hours: number
  gpu?: string
  numGpus?: number
  maxPrice?: number
  minReliability?: number
}

/**
 * What `ups offers --config C` needs from a config: the run's estimated hours (to price each
 * offer) and the config's `vast` section as default filters.
 */
export async function offerDefaultsFromConfig(path: string, options: {overrides?: string[]; gpu?: string}, deps: EstimateDeps): Promise<ConfigOfferDefaults> {
  const {loadConfig} = await import('../config/index.js')
  const {config} = await loadConfig(path, {overrides: options.overrides})
  const gpu = options.gpu ?? config.vast?.gpu
  const estimate = await estimateRun(config, {gpu}, deps)
  return {hours: estimate.hours, gpu, numGpus: config.vast?.num_gpus, maxPrice: config.vast?.max_price, minReliability: config.vast?.min_reliability}
}
