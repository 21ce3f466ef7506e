import {homedir} from 'node:os'

import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {configOverrideFlag} from '../../cli/flags.js'
import {kernelCachePath} from '../../pipeline/kernel-cache.js'
import {offerDefaultsFromConfig} from '../../pipeline/launch-estimate.js'
import {floatFlag, realVastProvider, vastFlags} from '../../cli/vast.js'
import {OFFER_ORDERS, type OffersResult, findOffers, parseOfferOrder, renderOffers} from '../../vast/index.js'

export type OffersCommandResult = OffersResult

export default class Offers extends BaseCommand {
  static summary = 'Search Vast.ai GPU offers: price, GPU, reliability, location, DLPerf/$.'
  static description =
    'Runs `vastai search offers` with the filters, re-checks them on the results and orders them ' +
    '(cheapest first by default). GPU RAM is in GB. With --config, each offer gets the estimated cost of that ' +
    "config's run (the dry-run estimate's hours x $/h) and the config's vast section supplies default filters; " +
    'with --hours, the cost of a run of that length.'
  static examples = [
    '<%= config.bin %> offers --gpu RTX_4090 --max-price 0.6',
    '<%= config.bin %> offers --gpu RTX_4090 --num-gpus 1 --min-gpu-ram 24 --min-reliability 0.98 --cuda 11.2',
    '<%= config.bin %> offers --min-inet-down 500 --min-disk 100 --order dlperf_per_dph --limit 5',
    '<%= config.bin %> offers --config configs/train_burgers_32dim.yaml --limit 5',
    '<%= config.bin %> offers --gpu A100_SXM4 --hours 6 --json',
  ]
  static flags = {
    ...vastFlags,
    gpu: Flags.string({description: 'GPU model as Vast names it (RTX_4090, A100_SXM4, H100_SXM).'}),
    'num-gpus': Flags.integer({description: 'Exact number of GPUs.', min: 1}),
    'max-price': floatFlag({description: 'Highest price in $/hour (whole instance).'}),
    'min-gpu-ram': floatFlag({description: 'Least GPU RAM per GPU, in GB.'}),
    'min-reliability': floatFlag({description: 'Least host reliability, 0..1 (e.g. 0.95).'}),
    'min-inet-down': floatFlag({description: 'Least download bandwidth, Mbit/s.'}),
    'min-disk': floatFlag({description: 'Least disk space, GB.'}),
    cuda: floatFlag({description: 'Least CUDA version the host driver supports (e.g. 11.2).'}),
    order: Flags.string({description: 'Sort order.', options: Object.keys(OFFER_ORDERS), default: 'dph'}),
    limit: Flags.integer({description: 'Most offers to show.', default: 10, min: 1}),
    hours: floatFlag({description: 'Estimated run length in hours: adds a cost column (hours x $/h).', exclusive: ['config']}),
    config: Flags.string({description: "A training config: prices each offer at its dry-run estimate; its vast section gives default filters."}),
    set: configOverrideFlag,
  }

  async run(): Promise<OffersCommandResult> {
    const {flags} = await this.parse(Offers)
    const fromConfig = flags.config
      ? await offerDefaultsFromConfig(flags.config, {overrides: flags.set, gpu: flags.gpu}, {cwd: process.cwd(), now: () => performance.now(), kernelCacheFile: kernelCachePath(process.env, homedir())})
      : undefined
    const result = await findOffers(
      realVastProvider(flags, this.logger),
      {
        gpu: flags.gpu ?? fromConfig?.gpu,
        numGpus: flags['num-gpus'] ?? fromConfig?.numGpus,
        maxPrice: flags['max-price'] ?? fromConfig?.maxPrice,
        minGpuRamGb: flags['min-gpu-ram'],
        minReliability: flags['min-reliability'] ?? fromConfig?.minReliability,
        minInetDown: flags['min-inet-down'],
        minDiskGb: flags['min-disk'],
        minCuda: flags.cuda,
      },
      {order: parseOfferOrder(flags.order), limit: flags.limit, estimateHours: flags.hours ?? fromConfig?.hours},
    )
    if (!this.jsonEnabled()) this.log(renderOffers(result))
    return result
  }
}
