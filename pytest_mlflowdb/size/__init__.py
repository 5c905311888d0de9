"""The size area's support: the growth history kept between runs (``history``, a pytest
plugin) and the forecast read from it (``forecast``). The area itself is
``checks/size.py``; the sizes come from ``probes/size.py``."""
