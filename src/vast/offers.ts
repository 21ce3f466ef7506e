/**
 * Offer search: filters -> Vast's query language, the same filters re-checked client-side (the
 * CLI's defaults and aliases change between versions), ordering, DLPerf/$ and cost per run.
 */
import {ExitCode, UserError} from '../util/errors.js'
import type {Provider} from './provider.js'
import type {Offer} from './types.js'

export interface OfferFilters {
  /** Vast GPU name; spaces or underscores (RTX_4090 == "RTX 4090"). */
  gpu?: string
  numGpus?: number
  /** $/hour ceiling (dph_total). */
  maxPrice?: number
  /** Per-GPU RAM floor in GB. */
  minGpuRamGb?: number
  /** 0..1 */
  minReliability?: number
  /** Mbit/s */
  minInetDown?: number
  /** GB */
  minDiskGb?: number
  /** Minimum CUDA version the host driver supports (cuda_max_good). */
  minCuda?: number
  /** One specific offer (ups launch --offer-id). */
  offerId?: number
  /** Only offers that can be rented now (default true). */
  rentable?: boolean
}

/** Orders ups understands; `dph` is cheapest first, the others best first. */
export const OFFER_ORDERS = {
  dph: {field: 'dph_total', desc: false, key: (o: Offer) => o.dphTotal},
  dlperf_per_dph: {field: 'dlperf_per_dphtotal', desc: true, key: (o: Offer) => o.dlperfPerDollar ?? -Infinity},
  reliability: {field: 'reliability', desc: true, key: (o: Offer) => o.reliability ?? -Infinity},
  gpu_ram: {field: 'gpu_ram', desc: true, key: (o: Offer) => o.gpuRamGb},
  inet_down: {field: 'inet_down', desc: true, key: (o: Offer) => o.inetDownMbps ?? -Infinity},
} as const
export type OfferOrder = keyof typeof OFFER_ORDERS

export function parseOfferOrder(value: string): OfferOrder {
  const v = value.replace(/-/g, '_').replace(/^dph_total$/, 'dph').replace(/^dlperf_per_dphtotal$/, 'dlperf_per_dph')
  if (v in OFFER_ORDERS) return v as OfferOrder
  throw new UserError(`Unknown offer order "${value}".`, {
    code: 'VAST_BAD_ORDER',
    hint: `Use one of: ${Object.keys(OFFER_ORDERS).join(', ')}.`,
    exitCode: ExitCode.USAGE,
  })
}

const fmt = (n: number) => String(Number(n.toFixed(4)))
const normGpu = (g: string) => g.trim().replace(/[\s_]+/g, ' ').toLowerCase()

/** Vast's query string for the filters (gpu_ram in GB: the CLI converts it to MB). */
export function buildOfferQuery(f: OfferFilters): string {
  const terms: string[] = []
  if (f.offerId !== undefined) terms.push(`id=${f.offerId}`)
  if (f.gpu) {
    if (!/^[\w .-]+$/.test(f.gpu)) {
      throw new UserError(`GPU name "${f.gpu}" has characters Vast's query cannot take.`, {
        code: 'VAST_BAD_FILTER',
        hint: 'Use a Vast GPU name such as RTX_4090, A100_SXM4 or H100_SXM.',
        exitCode: ExitCode.USAGE,
      })
    }
    terms.push(`gpu_name=${f.gpu.trim().replace(/\s+/g, '_')}`)
  }
  if (f.numGpus !== undefined) terms.push(`num_gpus=${f.numGpus}`)
  if (f.maxPrice !== undefined) terms.push(`dph_total<=${fmt(f.maxPrice)}`)
  if (f.minGpuRamGb !== undefined) terms.push(`gpu_ram>=${fmt(f.minGpuRamGb)}`)
  if (f.minReliability !== undefined) terms.push(`reliability>=${fmt(f.minReliability)}`)
  if (f.minInetDown !== undefined) terms.push(`inet_down>=${fmt(f.minInetDown)}`)
  if (f.minDiskGb !== undefined) terms.push(`disk_space>=${fmt(f.minDiskGb)}`)
  if (f.minCuda !== undefined) terms.push(`cuda_max_good>=${fmt(f.minCuda)}`)
  terms.push(`rentable=${f.rentable === false ? 'any' : 'true'}`)
  return terms.join(' ')
}

/** The filters, applied to parsed offers (GB = MB / 1000, as Vast's query does). */
export function filterOffers(offers: Offer[], f: OfferFilters): Offer[] {
  return offers.filter(
    (o) =>
      (f.offerId === undefined || o.id === f.offerId) &&
      (f.gpu === undefined || normGpu(o.gpuName) === normGpu(f.gpu)) &&
      (f.numGpus === undefined || o.numGpus === f.numGpus) &&
      (f.maxPrice === undefined || o.dphTotal <= f.maxPrice) &&
      (f.minGpuRamGb === undefined || o.gpuRamGb >= f.minGpuRamGb) &&
      (f.minReliability === undefined || (o.reliability ?? 0) >= f.minReliability) &&
      (f.minInetDown === undefined || (o.inetDownMbps ?? 0) >= f.minInetDown) &&
      (f.minDiskGb === undefined || (o.diskGb ?? 0) >= f.minDiskGb) &&
      (f.minCuda === undefined || (o.cudaMaxGood ?? 0) >= f.minCuda),
  )
}

/** Stable sort by the order; ties broken by price, then id (deterministic output). */
export function sortOffers(offers: Offer[], order: OfferOrder = 'dph'): Offer[] {
  const {key, desc} = OFFER_ORDERS[order]
  return [...offers].sort((a, b) => {
    const d = (key(a) - key(b)) * (desc ? -1 : 1)
    if (d !== 0 && !Number.isNaN(d)) return d
    return a.dphTotal - b.dphTotal || a.id - b.id
  })
}

export interface OfferRow extends Offer {
  /** hours x $/h, when an estimate of the run's hours was given. */
  estimatedCostUsd: number | null
}

export interface OffersResult {
  query: string
  order: OfferOrder
  estimateHours: number | null
  offers: OfferRow[]
}

export interface FindOffersOptions {
  order?: OfferOrder
  limit?: number
  /** Estimated run length; adds a cost column (hours x $/h). */
  estimateHours?: number
}

/** Searches, filters, orders and limits offers through any provider. */
export async function findOffers(provider: Provider, filters: OfferFilters, options: FindOffersOptions = {}): Promise<OffersResult> {
  const order = options.order ?? 'dph'
  const limit = options.limit ?? 10
  if (!Number.isInteger(limit) || limit < 1) {
    throw new UserError(`--limit must be a positive integer, got ${limit}.`, {code: 'VAST_BAD_FILTER', exitCode: ExitCode.USAGE})
  }
  const raw = await provider.search({filters, order, limit: Math.max(limit * 4, 64)})
  const offers = sortOffers(filterOffers(raw, filters), order).slice(0, limit)
  const hours = options.estimateHours ?? null
  return {
    query: buildOfferQuery(filters),
    order,
    estimateHours: hours,
    offers: offers.map((o) => ({...o, estimatedCostUsd: hours === null ? null : Math.round(hours * o.dphTotal * 100) / 100})),
  }
}

/** The cheapest offer matching the filters, or a UserError naming what to relax. */
export async function cheapestOffer(provider: Provider, filters: OfferFilters): Promise<Offer> {
  return (await cheapestOffers(provider, filters, 1))[0]
}

/** Up to `count` matching offers, cheapest first (fallbacks for an offer taken meanwhile); never empty. */
export async function cheapestOffers(provider: Provider, filters: OfferFilters, count: number): Promise<Offer[]> {
  const {offers, query} = await findOffers(provider, filters, {order: 'dph', limit: count})
  if (offers.length === 0) {
    throw new UserError(`No Vast.ai offer matches ${query}.`, {
      code: 'VAST_NO_OFFERS',
      hint: 'Relax a filter (--max-price, --gpu, --min-reliability) and look with `ups offers`.',
      exitCode: ExitCode.CHECK_FAILED,
    })
  }
  return offers
}

export function renderOffers(result: OffersResult): string {
  if (result.offers.length === 0) return `No offers match: ${result.query}`
  const withCost = result.estimateHours !== null
  const header = ['ID', 'GPU', '$/h', 'GPU RAM GB', 'Reliab.', 'Location', 'DLPerf/$', ...(withCost ? [`Est. $ (${result.estimateHours} h)`] : [])]
  const rows = result.offers.map((o) => [
    String(o.id),
    `${o.numGpus}x ${o.gpuName}`,
    o.dphTotal.toFixed(4),
    o.gpuRamGb.toFixed(1),
    o.reliability === null ? '-' : `${(o.reliability * 100).toFixed(1)}%`,
    o.location ?? '-',
    o.dlperfPerDollar === null ? '-' : o.dlperfPerDollar.toFixed(1),
    ...(withCost ? [o.estimatedCostUsd === null ? '-' : o.estimatedCostUsd.toFixed(2)] : []),
  ])
  return table([header, ...rows])
}

/** Left-aligned text columns, two spaces apart. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n')
}
