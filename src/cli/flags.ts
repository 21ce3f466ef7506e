import {Flags} from '@oclif/core'

/** Flags several commands share, so they read the same everywhere. */
export const configOverrideFlag = Flags.string({
  description: 'Override a config key (value parsed as YAML), e.g. --set training.batch_size=16. Repeatable.',
  multiple: true,
})
