"""The HF Trainer of the recipes: real-token counting, the weighted multi-task loss, the schedule's length."""

from __future__ import annotations

__all__ = ["recipe_trainer_class"]


def recipe_trainer_class():
    """The HF ``Trainer`` subclass every recipe stage trains with (built on first use: transformers is heavy)."""
    import torch
    from transformers import Trainer

    class RecipeTrainer(Trainer):
        """HF Trainer that counts real tokens (for tokens/s) and owns the schedule's length.

        With per-question rows (``loss_kind`` in the batch) the loss is the label loss plus
        ``explanation_weight`` times the explanation loss, each a mean over its target tokens, and
        the rows are trained in the order given (the schedule is the sampler).
        """

        schedule_steps: int | None = None
        real_tokens: int = 0
        explanation_weight: float = 1.0
        target_tokens: dict[str, int] | None = None  # label / explanation target tokens trained (set per run)
        ordered: bool = False

        def _get_train_sampler(self, train_dataset=None):
            if self.ordered:
                return torch.utils.data.SequentialSampler(train_dataset or self.train_dataset)
            return super()._get_train_sampler(train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            self.real_tokens += int(inputs.pop("num_real"))
            kind = inputs.pop("loss_kind", None)
            if kind is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            outputs = model(**inputs)
            logits = outputs.logits[:, :-1].float()
            target, kind = inputs["input_ids"][:, 1:], kind[:, 1:]
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
            label, explanation = kind == 1, kind == 2
            loss = (nll * label).sum() / label.sum().clamp(min=1)
            if explanation.any():
                loss = loss + self.explanation_weight * (nll * explanation).sum() / explanation.sum()
            counts = self.target_tokens
            counts["label"] = counts.get("label", 0) + int(label.sum())
            counts["explanation"] = counts.get("explanation", 0) + int(explanation.sum())
            return (loss, outputs) if return_outputs else loss

        def create_scheduler(self, num_training_steps, optimizer=None):
            # A decaying schedule keeps its length when a re-run raises max_steps.
            return super().create_scheduler(self.schedule_steps or num_training_steps, optimizer)

    return RecipeTrainer
