import assert from 'node:assert/strict'
import {describe, test} from 'node:test'

import {UserError} from '../../../src/util/errors.js'
import {
  type Offer,
  type Provider,
  buildOfferQuery,
  cheapestOffer,
  filterOffers,
  findOffers,
  parseOfferOrder,
  renderOffers,
  sortOffers,
  toOffer,
} from '../../../src/vast/index.js'
import {offer, recordedOffers} from '../../fixtures/fake-vast.js'

const all = (): Offer[] => [
  ...recordedOffers(),
  offer({id: 7, gpu_name: 'RTX 4090', dph_total: 0.29, reliability: 0.93, dlperf_per_dphtotal: 280, inet_down: 150, disk_space: 40, cuda_max_good: 11.0}),
  offer({id: 8, gpu_name: 'RTX 4090', dph_total: 0.31, reliability: 0.97, dlperf_per_dphtotal: 265, inet_down: 800, disk_space: 200, cuda_max_good: 12.2}),
].map((o) => toOffer(o as never))

/** A provider that returns fixed offers and records what it was asked. */
function fixedProvider(offers: Offer[]) {
  const asked: unknown[] = []
  const provider = {
    name: 'fixed',
    async search(req: unknown) {
      asked.push(req)
      return offers
    },
  } as unknown as Provider
  return {provider, asked}
}

describe('offers', () => {
  test('buildOfferQuery uses Vast query syntax, GB for gpu_ram, rentable=true', () => {
    assert.equal(
      buildOfferQuery({gpu: 'RTX 4090', numGpus: 1, maxPrice: 1, minGpuRamGb: 24, minReliability: 0.95, minInetDown: 200, minDiskGb: 64, minCuda: 11.2}),
      'gpu_name=RTX_4090 num_gpus=1 dph_total<=1 gpu_ram>=24 reliability>=0.95 inet_down>=200 disk_space>=64 cuda_max_good>=11.2 rentable=true',
    )
    assert.equal(buildOfferQuery({}), 'rentable=true')
    assert.throws(() => buildOfferQuery({gpu: 'RTX;rm -rf'}), (e: UserError) => e.code === 'VAST_BAD_FILTER' && e.exitCode === 2)
  })

  test('filterOffers applies every filter client-side (GB = MB/1000, GPU names with _ or spaces)', () => {
    const offers = all()
    assert.deepEqual(filterOffers(offers, {gpu: 'RTX_4090'}).map((o) => o.id).sort((a, b) => a - b), [7, 8, 5001001])
    assert.deepEqual(filterOffers(offers, {minGpuRamGb: 30}).map((o) => o.id), [5001003])
    assert.deepEqual(filterOffers(offers, {gpu: 'rtx 4090', minReliability: 0.95, minInetDown: 200}).map((o) => o.id).sort((a, b) => a - b), [8, 5001001])
    assert.deepEqual(filterOffers(offers, {maxPrice: 0.3}).map((o) => o.id), [7])
    assert.deepEqual(filterOffers(offers, {minDiskGb: 300, minCuda: 12.5}).map((o) => o.id), [5001003])
    assert.deepEqual(filterOffers(offers, {numGpus: 2}).map((o) => o.id), [5001002])
  })

  test('sortOffers: dph cheapest first, dlperf_per_dph and reliability best first', () => {
    const offers = all()
    assert.deepEqual(sortOffers(offers, 'dph').map((o) => o.id), [7, 8, 5001001, 5001002, 5001003])
    assert.deepEqual(sortOffers(offers, 'dlperf_per_dph').map((o) => o.id), [7, 8, 5001001, 5001002, 5001003])
    assert.deepEqual(sortOffers(offers, 'reliability').map((o) => o.id), [5001003, 5001001, 5001002, 8, 7])
    assert.equal(parseOfferOrder('dph_total'), 'dph')
    assert.equal(parseOfferOrder('dlperf-per-dph'), 'dlperf_per_dph')
    assert.throws(() => parseOfferOrder('vibes'), (e: UserError) => e.code === 'VAST_BAD_ORDER')
  })

  test('findOffers filters even what the provider returned unfiltered, limits, and adds cost = hours x $/h', async () => {
    const {provider, asked} = fixedProvider(all())
    const r = await findOffers(provider, {gpu: 'RTX_4090', minReliability: 0.95}, {limit: 1, estimateHours: 10})
    assert.equal(r.offers.length, 1)
    assert.equal(r.offers[0].id, 8)
    assert.equal(r.offers[0].estimatedCostUsd, 3.1)
    assert.equal(r.query, 'gpu_name=RTX_4090 reliability>=0.95 rentable=true')
    assert.equal((asked[0] as {order: string}).order, 'dph')
    const table = renderOffers(r)
    assert.match(table, /Est\. \$ \(10 h\)/)
    assert.match(table, /^8\s+1x RTX 4090\s+0\.3100\s+24\.6\s+97\.0%\s+Sweden, SE\s+265\.0\s+3\.10$/m)
    const none = await findOffers(provider, {gpu: 'B200'})
    assert.equal(renderOffers(none), 'No offers match: gpu_name=B200 rentable=true')
  })

  test('cheapestOffer picks the lowest $/h match or says what to relax', async () => {
    const {provider} = fixedProvider(all())
    assert.equal((await cheapestOffer(provider, {minGpuRamGb: 20, minReliability: 0.99})).id, 5001001)
    await assert.rejects(cheapestOffer(provider, {maxPrice: 0.01}), (e: UserError) => e.code === 'VAST_NO_OFFERS' && e.exitCode === 1)
  })

  test('DLPerf/$ falls back to dlperf / dph_total when Vast omits it', () => {
    const o = toOffer({...offer({id: 1, dlperf: 50, dph_total: 0.5}), dlperf_per_dphtotal: null} as never)
    assert.equal(o.dlperfPerDollar, 100)
  })
})
