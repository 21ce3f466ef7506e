import {Flags} from '@oclif/core'
import {join} from 'node:path'

import {BaseCommand} from '../cli/base-command.js'
import {configOverrideFlag} from '../cli/flags.js'
import {detachedWatchdog, durationFlag, realLaunchDeps} from '../cli/ops-deps.js'
import {floatFlag, vastFlags} from '../cli/vast.js'
import {type LaunchResult, launch, renderLaunch} from '../vast/index.js'

export type {LaunchResult} from '../vast/index.js'

export default class Launch extends BaseCommand {
  static summary = 'Rent a Vast.ai GPU and start a training run on it (validate, estimate, pick an offer, create, record).'
  static description =
    'A staged plan: validate the config (--no-data), estimate the cost and refuse when it exceeds --budget or vast.budget_usd, ' +
    'fetch the source (this checkout\'s origin at HEAD unless --source; a dirty tree is refused unless --allow-dirty), pick the ' +
    'cheapest matching offer (or --offer-id), build the onstart script, create the instance and record the launch in ' +
    '~/.ups/launches.jsonl ($UPS_HOME). Secrets (WANDB_API_KEY) reach the instance through its environment, never the script. ' +
    '--dry-run prints the vastai command (env values masked) and the script, and creates nothing. --wait waits for "Training ' +
    'started" in the log and otherwise saves the log to incidents/ and destroys the instance (exit 1).'
  static examples = [
    '<%= config.bin %> launch --config configs/train_burgers_32dim.yaml --gpu RTX_4090 --auto-shutdown --dry-run',
    '<%= config.bin %> launch --config configs/train_burgers_32dim.yaml --gpu RTX_4090 --max-price 0.6 --auto-shutdown --wait --watchdog',
    '<%= config.bin %> launch --config configs/train_burgers_32dim.yaml --offer-id 5001001 --budget 5 --run-arg=--wandb-run-name=burgers32 --label burgers32',
    '<%= config.bin %> launch --config configs/train_burgers_32dim.yaml --source git:https://github.com/org/ups.git#3f2c1ab --data generate:burgers --json',
  ]
  static flags = {
    ...vastFlags,
    config: Flags.string({char: 'c', description: 'Training config (inside the repository).', required: true}),
    set: configOverrideFlag,
    gpu: Flags.string({description: 'GPU model as Vast names it (default: vast.gpu in the config).'}),
    'max-price': floatFlag({description: 'Highest $/hour (default: vast.max_price).'}),
    'offer-id': Flags.integer({description: 'Rent this offer instead of the cheapest match.', min: 1}),
    image: Flags.string({description: 'Docker image (default: vast.image, else CUDA 11.2 + cuDNN 8.1 runtime).'}),
    disk: Flags.integer({description: 'Disk in GB (default: vast.disk_gb, else 64).', min: 1}),
    'auto-shutdown': Flags.boolean({description: 'Stop (not destroy) the instance when the run ends.'}),
    'run-arg': Flags.string({description: 'Extra argument for `ups run` on the instance (repeatable): --run-arg=--wandb-run-name=x.', multiple: true}),
    source: Flags.string({description: 'git:URL#REF to fetch on the instance (default: origin at HEAD).'}),
    data: Flags.string({description: 'Data step before the run (repeatable): generate:ARGS, url:URL, rclone:REMOTE:PATH.', multiple: true}),
    label: Flags.string({description: 'Instance label (default: ups-<run id>-<random>, unique to this launch).'}),
    budget: floatFlag({description: 'Refuse when the estimated cost exceeds this many $ (default: vast.budget_usd).'}),
    wait: Flags.boolean({description: 'Wait for "Training started"; roll back (save logs, destroy) when it does not come.'}),
    'wait-timeout': durationFlag({description: 'How long --wait waits (90s, 15m, 1h).', default: 15 * 60_000}),
    'allow-dirty': Flags.boolean({description: 'Launch even with uncommitted changes (the instance runs HEAD without them).'}),
    watchdog: Flags.boolean({description: 'Start `ups watchdog` for the instance in the background (its pid is recorded).'}),
    'dry-run': Flags.boolean({description: 'Show the plan, the vastai command and the onstart script; create nothing.'}),
  }

  async run(): Promise<LaunchResult> {
    const {flags} = await this.parse(Launch)
    const deps = realLaunchDeps(flags, this.logger, (_stage, message) => this.note(message))
    if (flags.watchdog) deps.spawnWatchdog = detachedWatchdog(join(this.config.root, 'bin', 'run.js'), flags)
    const result = await launch(
      {
        configPath: flags.config, overrides: flags.set, gpu: flags.gpu, maxPrice: flags['max-price'], offerId: flags['offer-id'],
        image: flags.image, diskGb: flags.disk, autoShutdown: flags['auto-shutdown'], runArgs: flags['run-arg'], source: flags.source,
        data: flags.data, label: flags.label, budgetUsd: flags.budget, wait: flags.wait, waitTimeoutMs: flags['wait-timeout'],
        allowDirty: flags['allow-dirty'], watchdog: flags.watchdog, dryRun: flags['dry-run'],
      },
      deps,
    )
    if (!this.jsonEnabled()) this.log(renderLaunch(result))
    return result
  }
}
