"""The adversarial game: losses (objectives), penalties, the pipeline of transforms in front of
the discriminator (ADA, DiffAugment, instance noise), stabilisers, and the phases of one step."""
