/**
 * The estimate `ups launch` checks against the budget: the dry-run estimator (estimateRun),
 * reduced to hours, dollars and the price it assumed, for the GPU launch will rent.
 */
import type {UpsConfig} from '../config/index.js'
import {type EstimateDeps, estimateRun} from './estimate.js'

export interface LaunchEstimate {
  hours: number
  usd: number
  pricePerHour: number
  /** Who made the figure, shown next to it. */
  source?: string
}

/** The estimator launch depends on: the config, and the GPU name it will rent. */
export type EstimateFn = (config: UpsConfig, gpu: string) => Promise<LaunchEstimate>

/** `static: true` uses the throughput table alone (no timed steps): fast, less exact. */
export function dryRunEstimateFn(deps: EstimateDeps, options: {static?: boolean} = {}): EstimateFn {
  return async (config, gpu) => {
    const estimate = await estimateRun(config, {gpu, static: options.static ?? false}, deps)
    const gpus = config.vast?.num_gpus ?? 1
    return {
      hours: estimate.hours,
      usd: Math.round(estimate.costUsd * gpus * 100) / 100,
      pricePerHour: estimate.target.pricePerHour * gpus,
      source: `dry-run estimate (${estimate.method}, ${estimate.target.priceSource})`,
    }
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
