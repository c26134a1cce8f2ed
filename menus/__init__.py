"""The USSD conversation: screens, texts in English and Kiswahili, the menu engine. Pure Python."""
