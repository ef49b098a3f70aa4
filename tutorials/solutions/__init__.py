"""Worked solutions of the tutorials' exercises: ``tutorial_NN.py`` for ``NN_*.py``.

Try an exercise first: its self-check says what is wrong. To compare with a solution from
a notebook opened in ``tutorials/``, ``from solutions.tutorial_01 import eq1_loss`` (the
notebook's folder is on its import path).
"""
