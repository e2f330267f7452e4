"""payment-probe's legs: one pytest test per check of the billing API's money path."""

__version__ = "0.1.0"
