"""Engines train trials. `reference` trains one trial the textbook way (the ground truth);
`fused` trains a group of trials as one stacked model and must match the reference."""
