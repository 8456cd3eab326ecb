"""Search strategies behind one interface (``base.Strategy``), chosen by ``registry``."""
