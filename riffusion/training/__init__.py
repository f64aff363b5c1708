"""Training riffusion on your own music: a dataset of spectrogram clips, and LoRA fine-tuning.

riffusion.training.dataset_builder cuts a folder of tracks into captioned spectrogram clips in the
Hugging Face imagefolder layout; riffusion.training.trainer fine-tunes the model on such a dataset
into a run folder (riffusion.training.run_folder) that ends with a LoRA our --lora loads.
"""
