"""Long-range learning tasks, generated on the fly from a seed, no download (SPEC §6).

Every task is a :class:`Task`: ``task.sample(batch_size, seed)`` draws a
:class:`Batch` ``(x, y, mask, info)`` in the layout
:meth:`gradlab.Network.loss_and_grads` expects; ``task.metric(outputs,
batch)`` scores a network's outputs; ``task.baseline`` is that metric at
chance, ``task.baseline_loss`` the loss at chance, and ``task.solved(metric)``
applies the success criterion ``task.criterion``. ``task.network(cell, H)``
builds a network of the right shape.

=========================  ==========================  =========  =============================  ======================
task                       source                      mode       chance                         solved when
=========================  ==========================  =========  =============================  ======================
``Adding(T, "le2015")``    Le et al. 2015              m-to-one   MSE 1/6 (predict 1)            MSE ≤ 0.01
``Adding(T, "hs1997")``    Hochreiter & Schm. 1997     m-to-one   0.154 correct (predict 0.5)    all of a batch correct
``CopyMemory(T)``          Arjovsky et al. 2016        m-to-m     recall 1/8, loss 10 log 8      recall ≥ 0.99
``TemporalOrder(T)``       Hochreiter & Schm. 1997     m-to-one   accuracy 1/4                   all of a batch correct
``EmbeddedReber()``        Reber 1967; H&S 1997        m-to-m     0.5 strings (no memory)        all of a batch correct
``SequenceReversal(T)``    Sutskever et al. 2014       seq2seq    token accuracy 1/n             token accuracy ≥ 0.99
``CharCorpus(path)``       the notes' language model   m-to-m     unigram entropy H₁ per char    ≤ H₁ / 2 per char
``WordCorpus(path)``       the notes' language model   m-to-m     unigram entropy H₁ per word    ≤ 0.6·H₁ per word
=========================  ==========================  =========  =============================  ======================
"""

from . import reber
from .adding import Adding
from .base import Batch, Task
from .copy import CopyMemory
from .reber import EmbeddedReber
from .reversal import SequenceReversal
from .temporal_order import TemporalOrder
from .text import CharCorpus, default_corpus_path
from .words import WordCorpus, default_word_corpus_path, detokenize, per_word_perplexity, tokenize

TASKS = {
    "adding": Adding,
    "copy": CopyMemory,
    "temporal_order": TemporalOrder,
    "reber": EmbeddedReber,
    "reversal": SequenceReversal,
    "text": CharCorpus,
    "words": WordCorpus,
}

__all__ = [
    "Adding",
    "Batch",
    "CharCorpus",
    "CopyMemory",
    "EmbeddedReber",
    "SequenceReversal",
    "TASKS",
    "Task",
    "TemporalOrder",
    "WordCorpus",
    "default_corpus_path",
    "default_word_corpus_path",
    "detokenize",
    "per_word_perplexity",
    "reber",
    "tokenize",
]
