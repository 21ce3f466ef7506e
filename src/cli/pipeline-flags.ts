import {Flags} from '@oclif/core'

import {floatFlag} from './vast.js'

/** Flags `ups run` and `ups resume` share. */
export const redoFlags = {
  'force-train': Flags.boolean({description: 'Train again from scratch even when checkpoints exist (also the only way past a changed config hash).'}),
  'redo-small-eval': Flags.boolean({description: 'Re-run the small (proxy) evaluation and overwrite its cached metrics.'}),
  'redo-full-eval': Flags.boolean({description: 'Re-run the full evaluation (e.g. leaderboard out of sync).'}),
}

export const runsRootFlag = Flags.string({description: 'Folder of run directories.', default: 'artifacts/runs'})

export {floatFlag}
