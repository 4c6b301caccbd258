"""Pure helpers of the Replicate backend: model inputs, prediction progress, file uploads."""
