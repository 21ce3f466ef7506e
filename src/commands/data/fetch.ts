import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {realFetchDeps} from '../../cli/fetch-deps.js'
import {createProgressRenderer, renderDataFetch} from '../../data/fetch-render.js'
import {type DataFetchResult, fetchData} from '../../data/fetch.js'

export type {DataFetchResult} from '../../data/fetch.js'

export default class DataFetch extends BaseCommand {
  static summary = 'Download a data file over HTTP(S) with resume, retries and checksum, or copy it from an rclone remote.'
  static description = `HTTP(S): the file is written to .<name>.part in the destination folder and resumed from there (HTTP Range) after a dropped connection or on a rerun; network errors, 5xx and 429 are retried with exponential backoff (honouring Retry-After), 401/403/404 are not. The file is checked against --checksum (md5 or sha256) before it is renamed into place, so a partial or corrupt file never appears under its final name. A file that is already there with the right checksum is skipped.

rclone:REMOTE:path runs \`rclone copyto\` (a file) or \`rclone copy\` (a folder) with the rclone configuration of this machine, then verifies the checksum the same way.

Exit codes: 1 checksum mismatch; 2 bad arguments; 3 download failed (HTTP error, network, rclone missing or failing).`

  static examples = [
    {
      description: "PDEBench's 1D Burgers file (about 8 GB) with the MD5 from PDEBench's URL list:",
      command:
        '<%= config.bin %> data fetch https://darus.uni-stuttgart.de/api/access/datafile/281363 --name 1D_Burgers_Sols_Nu0.01.hdf5 --to data/pdebench --checksum md5:e6d9a4f62baf9a29121a816b919e2770',
    },
    {
      description: 'Re-download a quarantined shard from the B2 remote (runbook INC-002):',
      command: '<%= config.bin %> data fetch rclone:B2:pdebench/full/burgers1d/burgers1d_train_000.h5 --to data/pdebench',
    },
    {
      description: 'A flaky link: more retries, machine-readable result:',
      command:
        '<%= config.bin %> data fetch https://darus.uni-stuttgart.de/api/access/datafile/281363 --name 1D_Burgers_Sols_Nu0.01.hdf5 --to data/pdebench --retries 10 --json',
    },
  ]

  static args = {
    source: Args.string({description: 'An http(s):// URL, or rclone:REMOTE:path.', required: true}),
  }

  static flags = {
    to: Flags.string({description: 'Destination folder (created when missing).', required: true}),
    checksum: Flags.string({description: 'Expected checksum, md5:HEX or sha256:HEX; verified before the file is put in place.'}),
    retries: Flags.integer({description: 'Retries after a failure without progress (HTTP) or rclone attempts - 1.', default: 5, min: 0, max: 100}),
    name: Flags.string({description: 'File name in --to (default: the last segment of the URL or path).'}),
    force: Flags.boolean({description: 'Fetch again even when the file is already there.'}),
  }

  async run(): Promise<DataFetchResult> {
    const {args, flags} = await this.parse(DataFetch)
    const progress = createProgressRenderer({isTTY: Boolean(process.stderr.isTTY), write: (t) => process.stderr.write(t), now: Date.now})
    try {
      const result = await fetchData(
        args.source,
        {to: flags.to, checksum: flags.checksum, retries: flags.retries, name: flags.name, force: flags.force, onEvent: (e) => progress.onEvent(e)},
        realFetchDeps(),
      )
      progress.done()
      if (!this.jsonEnabled()) this.log(renderDataFetch(result))
      return result
    } finally {
      progress.done()
    }
  }
}
