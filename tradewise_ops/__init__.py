"""tradewise: deploy, scale, load-test and watch the TradeWise AI service."""

__version__ = "0.1.0"
