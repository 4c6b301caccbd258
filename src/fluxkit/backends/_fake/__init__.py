"""The fake provider's server side: fluxkit's offline provider, answered in-process."""
